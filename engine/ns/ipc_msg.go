package ns

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unsafe"

	ipc_msg "github.com/checkpoint-restore/go-criu/v7/crit/images/ipc-msg"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/abi"
	"github.com/gocr/gocr/engine/image"
)

// SysV message queues: ipcns-msg-ID.img holds an ipc_msg_entry per queue,
// then qnum times an ipc_msg (type and size) followed by the message's
// bytes padded to 8. The dump copies the messages in place (msgrcv with
// MSG_COPY, which needs a kernel with CONFIG_CHECKPOINT_RESTORE), so the
// queue keeps them; restore sends them again in order.

// msgQueue is one queue of the image with its messages.
type msgQueue struct {
	e    *ipc_msg.IpcMsgEntry
	msgs []sysvMsg
}

type sysvMsg struct {
	mtype uint64
	text  []byte
}

func msgctl(id, cmd int, ds *abi.MsqidDS) error {
	_, _, e := unix.Syscall(unix.SYS_MSGCTL, uintptr(id), uintptr(cmd), uintptr(unsafe.Pointer(ds)))
	if e != 0 {
		return e
	}
	return nil
}

// dumpMsg writes ipcns-msg-ID.img with every queue of the calling
// thread's ipc namespace; msgmax, the namespace's limit on a message's
// size, sizes the copy buffer.
func dumpMsg(dir *image.Dir, nsID uint32, ids IDMap, msgmax uint32) error {
	list, err := sysvIDs("msg")
	if err != nil {
		return err
	}
	w, err := dir.Writer(image.IpcnsMsg, image.IpcnsMsgFile(nsID))
	if err != nil {
		return err
	}
	for _, id := range list {
		q, err := readMsgQueue(id, ids, msgmax)
		if err == nil {
			err = q.write(w)
		}
		if err != nil {
			w.Abort()
			return err
		}
	}
	return w.Close()
}

// readMsgQueue copies a queue and its messages, leaving them queued.
func readMsgQueue(id int, ids IDMap, msgmax uint32) (*msgQueue, error) {
	var ds abi.MsqidDS
	if err := msgctl(id, unix.IPC_STAT, &ds); err != nil {
		return nil, fmt.Errorf("SysV message queue %d: IPC_STAT: %w", id, err)
	}
	q := &msgQueue{e: &ipc_msg.IpcMsgEntry{Desc: ipcDesc(id, &ds.Perm, ids), Qbytes: ptr(uint32(ds.Qbytes)), Qnum: ptr(uint32(ds.Qnum))}}
	what := descName("message queue", q.e.Desc)
	buf := make([]byte, 8+int(msgmax))
	for i := range int(ds.Qnum) {
		n, _, e := unix.Syscall6(unix.SYS_MSGRCV, uintptr(id), uintptr(unsafe.Pointer(&buf[0])), uintptr(msgmax),
			uintptr(i), unix.IPC_NOWAIT|abi.MsgCopy, 0)
		switch {
		case e == unix.ENOSYS:
			return nil, fmt.Errorf("%s: msgrcv MSG_COPY: %w: the kernel cannot copy messages without taking them (CONFIG_CHECKPOINT_RESTORE)", what, e)
		case e == unix.E2BIG:
			return nil, fmt.Errorf("%s: message %d is larger than msgmax (%d bytes)", what, i, msgmax)
		case e != 0:
			return nil, fmt.Errorf("%s: copy message %d of %d: %w", what, i, ds.Qnum, e)
		}
		q.msgs = append(q.msgs, sysvMsg{mtype: binary.LittleEndian.Uint64(buf), text: append([]byte(nil), buf[8:8+n]...)})
	}
	return q, nil
}

// write appends the queue and its messages to the image.
func (q *msgQueue) write(w *image.Writer) error {
	if err := w.Write(q.e); err != nil {
		return err
	}
	for _, m := range q.msgs {
		if err := w.WritePayload(&ipc_msg.IpcMsg{Mtype: ptr(m.mtype), Msize: ptr(uint32(len(m.text)))}, bytes.NewReader(m.text)); err != nil {
			return err
		}
	}
	return nil
}

// readMsg reads and checks ipcns-msg-ID.img.
func readMsg(dir *image.Dir, nsID uint32) ([]*msgQueue, error) {
	name := image.IpcnsMsgFile(nsID)
	if !dir.Exists(name) {
		return nil, nil
	}
	rd, err := dir.Reader(image.IpcnsMsg, name)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	var out []*msgQueue
	for {
		e := &ipc_msg.IpcMsgEntry{}
		if !rd.Next(e) {
			break
		}
		if e.GetDesc() == nil {
			return nil, fmt.Errorf("%s: entry %d: no desc", name, rd.Index())
		}
		q := &msgQueue{e: e}
		for range e.GetQnum() {
			m := &ipc_msg.IpcMsg{}
			if !rd.Next(m) {
				if rd.Err() == nil {
					return nil, fmt.Errorf("%s: %s: %d messages, the file ends after %d", name, descName("message queue", e.Desc), e.GetQnum(), len(q.msgs))
				}
				return nil, rd.Err()
			}
			text, err := io.ReadAll(rd.Payload())
			if err != nil {
				return nil, fmt.Errorf("%s: entry %d: %w", name, rd.Index(), err)
			}
			if m.GetMtype() == 0 || m.GetMtype() > 1<<63-1 {
				return nil, fmt.Errorf("%s: entry %d: message type %d: not a positive long", name, rd.Index(), m.GetMtype())
			}
			q.msgs = append(q.msgs, sysvMsg{mtype: m.GetMtype(), text: text})
		}
		out = append(out, q)
	}
	return out, rd.Err()
}

// restore makes the queue in the calling thread's (fresh) ipc namespace
// with its id, creator, byte limit, messages in order, owner and mode.
// The namespace's msgmnb is set to the queue's limit while it is made (a
// new queue takes its limit from there, and raising a limit past it takes
// CAP_SYS_RESOURCE, which gocr may lack), msgmax to the largest message;
// restoreIPCVar sets both to the image's afterwards.
func (q *msgQueue) restore(ids IDMap) error {
	d := q.e.GetDesc()
	what := descName("message queue", d)
	if err := setSysctl("kernel/msgmnb", strconv.FormatUint(uint64(q.e.GetQbytes()), 10)); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	longest := 0
	for _, m := range q.msgs {
		longest = max(longest, len(m.text))
	}
	if cur, err := readSysctl("kernel/msgmax"); err != nil {
		return err
	} else if uint64(longest) > cur {
		if err := setSysctl("kernel/msgmax", strconv.Itoa(longest)); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	flags := uintptr(d.GetMode()&abi.IpcModeBits) | unix.IPC_CREAT | unix.IPC_EXCL
	if err := makeIPC("message queue", "kernel/msg_next_id", d, ids, func() (int, error) {
		r, _, e := unix.Syscall(unix.SYS_MSGGET, uintptr(int32(d.GetKey())), flags, 0)
		if e != 0 {
			return 0, e
		}
		return int(r), nil
	}); err != nil {
		return err
	}
	id := int(d.GetId())
	for i, m := range q.msgs {
		if err := msgsnd(id, m); err != nil {
			return fmt.Errorf("%s: send message %d (type %d, %d bytes): %w", what, i, m.mtype, len(m.text), err)
		}
	}
	var ds abi.MsqidDS
	if err := msgctl(id, unix.IPC_STAT, &ds); err != nil {
		return fmt.Errorf("%s: IPC_STAT: %w", what, err)
	}
	if err := setPerm("message queue", &ds.Perm, d, ids); err != nil {
		return err
	}
	ds.Qbytes = uint64(q.e.GetQbytes())
	if err := msgctl(id, unix.IPC_SET, &ds); err != nil {
		return fmt.Errorf("%s: IPC_SET uid %d gid %d mode %#o qbytes %d: %w", what, ds.Perm.Uid, ds.Perm.Gid, ds.Perm.Mode, ds.Qbytes, err)
	}
	return nil
}

// msgsnd queues one message, without waiting: the queue was made with
// room for all it held.
func msgsnd(id int, m sysvMsg) error {
	buf := make([]byte, 8+len(m.text))
	binary.LittleEndian.PutUint64(buf, m.mtype)
	copy(buf[8:], m.text)
	_, _, e := unix.Syscall6(unix.SYS_MSGSND, uintptr(id), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(m.text)), unix.IPC_NOWAIT, 0, 0)
	if e != 0 {
		if e == unix.EAGAIN {
			return errors.New("the queue is full")
		}
		return e
	}
	return nil
}
