package files

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	sk_opts "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-opts"
	sk_unix "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-unix"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/ns"
	"github.com/gocr/gocr/engine/procfs"
	"github.com/gocr/gocr/engine/sockdiag"
)

// Unix sockets (AF_UNIX), both halves.
//
// Dump: the kernel says through sock_diag (engine/sockdiag) what only it
// knows of a socket — its peer, bound name, the connections waiting on a
// listener, how much is queued — for every unix socket of the tree's
// network namespace at once. The queued data is read without taking it:
// gocr gets its own copy of the task's fd (pidfd_getfd) and peeks the
// queue from the first byte on, moving the peek offset (SO_PEEK_OFF) past
// each packet, then puts the offset back. Each socket is one
// UnixSkEntry; each packet in flight one entry of sk-queues.img, by the id
// of the socket that will read it. The peers and pending connections of
// every socket must be in the tree: checked in FinishUnix, when every
// process's fds are known. What the client of a pending connection has
// sent can only be read by accepting the connection: unix_pending.go.
//
// Refused, by pid, fd and socket inode: other families, fds in flight
// (SCM_RIGHTS), a peer outside the tree (CRIU's --ext-unix-sk), socket
// filters. Not kept: the sender's address and credentials of each packet
// (a restored datagram comes from its peer or an unnamed socket, with
// gocr's credentials), the peek offset, out-of-band data.
//
// Restore: gocr makes every unix socket of the image at once, in the
// tree's network namespace and under its root (makeUnixSockets): names
// with bind, listeners with listen, connected pairs with socketpair (or,
// for an accepted connection, connect + accept on its listener, so it
// carries the listener's name), pending connections with connect in the
// order accept will return them; then fills the queues by sending the
// saved packets from the peer end, sets options, shutdowns and flags. The
// sockets then reach the tasks like any file (RestoreTable).

// QueuedPacket is one packet in flight to the unix socket with file id
// IDFor: a datagram, or a chunk of a stream, in queue order.
type QueuedPacket struct {
	IDFor uint32
	Data  []byte
}

// unixDump is what a dump knows of the unix sockets of the tree.
type unixDump struct {
	diag   map[uint32]*sockdiag.Unix // every unix socket of the tree's network namespace, by inode
	iconOf map[uint32]uint32         // client of a pending connection → its listener
	dumped map[uint32]*unixDumped    // the tree's sockets dumped so far, by inode
	order  []uint32                  // dumped, in files.img order
}

// unixDumped is one socket of the tree and where it was first seen.
type unixDumped struct {
	e       *sk_unix.UnixSkEntry
	d       *sockdiag.Unix
	entry   *fdinfo.FileEntry
	pid, fd int
}

func (u *unixDumped) where() string {
	return fmt.Sprintf("pid %d fd %d (unix socket %d)", u.pid, u.fd, u.d.Ino)
}

// Kernel facts used below.
const (
	rcvShutdown  = 1   // RCV_SHUTDOWN
	sendShutdown = 2   // SEND_SHUTDOWN
	maxFdsInMsg  = 253 // SCM_MAX_FD
)

// dumpSocket records a socket: unix (unix.go) or inet (inet.go); any
// other family is refused by name.
func (s *Set) dumpSocket(pid int, fd Fd) (uint32, fdinfo.FdTypes, error) {
	ino, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(fd.Target, "socket:["), "]"), 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("socket inode in %q: %w", fd.Target, err)
	}
	local, err := CopyFd(pid, fd.Fd)
	if err != nil {
		return 0, 0, fmt.Errorf("socket %d: %w", ino, err)
	}
	defer unix.Close(local)
	family, err := unix.GetsockoptInt(local, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return 0, 0, fmt.Errorf("socket %d: family: %w", ino, err)
	}
	switch family {
	case unix.AF_UNIX:
		id, err := s.dumpUnix(pid, fd, uint32(ino), local)
		if err != nil {
			return 0, 0, fmt.Errorf("unix socket %d: %w", ino, err)
		}
		return id, fdinfo.FdTypes_UNIXSK, nil
	case unix.AF_INET, unix.AF_INET6:
		id, err := s.dumpInet(pid, fd, uint32(ino), local, family)
		if err != nil {
			return 0, 0, fmt.Errorf("socket %d: %w", ino, err)
		}
		return id, fdinfo.FdTypes_INETSK, nil
	}
	return 0, 0, fmt.Errorf("socket %d: %s sockets are not supported yet (only unix and inet sockets are)", ino, familyName(family))
}

// CopyFd gives gocr its own fd on the open file behind pid's fd
// (pidfd_getfd, Linux 5.6): the same socket, so reading its options or
// peeking its queue shows the task's.
func CopyFd(pid, fd int) (int, error) {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return -1, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(pidfd)
	local, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		return -1, fmt.Errorf("pidfd_getfd pid %d fd %d: %w", pid, fd, err)
	}
	return local, nil
}

func familyName(f int) string {
	switch f {
	case unix.AF_INET:
		return "AF_INET (IPv4)"
	case unix.AF_INET6:
		return "AF_INET6 (IPv6)"
	case unix.AF_NETLINK:
		return "AF_NETLINK"
	case unix.AF_PACKET:
		return "AF_PACKET"
	}
	return fmt.Sprintf("family %d", f)
}

// unixSockets reads, on first use, what the kernel says of every unix
// socket in pid's network namespace. The tree is stopped, so it does not
// change while the dump goes on.
func (s *Set) unixSockets(pid int) (*unixDump, error) {
	if s.usk != nil {
		return s.usk, nil
	}
	var all map[uint32]*sockdiag.Unix
	err := ns.Enter(pid, "net", func() error {
		c, err := sockdiag.Open()
		if err != nil {
			return err
		}
		defer c.Close()
		all, err = c.AllUnix()
		return err
	})
	if err != nil {
		return nil, err
	}
	u := &unixDump{diag: all, iconOf: map[uint32]uint32{}, dumped: map[uint32]*unixDumped{}}
	for _, d := range all {
		for _, c := range d.Icons {
			if c != 0 {
				u.iconOf[c] = d.Ino
			}
		}
	}
	s.usk = u
	return u, nil
}

// dumpUnix records one unix socket: its entry, and the packets queued to
// it in sk-queues.
func (s *Set) dumpUnix(pid int, fd Fd, ino uint32, local int) (uint32, error) {
	u, err := s.unixSockets(pid)
	if err != nil {
		return 0, err
	}
	d := u.diag[ino]
	if d == nil {
		return 0, fmt.Errorf("not among the unix sockets of pid %d's network namespace", pid)
	}
	switch d.Type {
	case unix.SOCK_STREAM, unix.SOCK_DGRAM, unix.SOCK_SEQPACKET:
	default:
		return 0, fmt.Errorf("type %d: only stream, datagram and seqpacket sockets are supported", d.Type)
	}
	switch d.State {
	case sockdiag.StateEstablished, sockdiag.StateClose, sockdiag.StateListen:
	default:
		return 0, fmt.Errorf("state %d: not supported (a connect in progress?)", d.State)
	}
	opts, err := dumpSockOpts(local)
	if err != nil {
		return 0, err
	}
	e := &sk_unix.UnixSkEntry{
		Ino: ptr(ino), Type: ptr(uint32(d.Type)), State: ptr(uint32(d.State)),
		Flags: ptr(fd.Info.Flags &^ unix.O_CLOEXEC), Uflags: ptr(uint32(0)), Backlog: ptr(uint32(0)),
		Peer: ptr(d.Peer), Fown: noOwner(), Opts: opts, Name: append([]byte{}, d.Name...),
	}
	if s.NetNsID != 0 {
		e.NsId = ptr(s.NetNsID)
	}
	if d.State == sockdiag.StateListen {
		e.Backlog = ptr(d.WQueue)
	}
	if d.Shutdown != 0 {
		e.Shutdown = sk_opts.SkShutdown(d.Shutdown & (rcvShutdown | sendShutdown)).Enum()
	}
	// A connection not accepted yet has no peer inode: its peer is the
	// listener it waits on, which is where restore connects it.
	if l, ok := u.iconOf[ino]; ok && d.Peer == 0 && d.Type != unix.SOCK_DGRAM {
		e.Peer = ptr(l)
	}
	if err := s.unixName(pid, d, e); err != nil {
		return 0, err
	}
	// Only a datagram socket or a connected one has a queue to read (a
	// stream or seqpacket socket refuses recvmsg before it connects).
	var packets [][]byte
	if d.Type == unix.SOCK_DGRAM || d.State == sockdiag.StateEstablished {
		if packets, err = peekQueue(local, d.Type, d.Shutdown&rcvShutdown != 0); err != nil {
			return 0, err
		}
	}
	typ := fdinfo.FdTypes_UNIXSK
	entry := &fdinfo.FileEntry{Type: &typ, Usk: e}
	id := s.add(entry)
	for _, p := range packets {
		s.SkQueues = append(s.SkQueues, QueuedPacket{IDFor: id, Data: p})
	}
	u.dumped[ino] = &unixDumped{e: e, d: d, entry: entry, pid: pid, fd: fd.Fd}
	u.order = append(u.order, ino)
	return id, nil
}

// unixName finds the file of a socket bound to a path: its mode and owner
// (file_perms), and for a relative name the directory it is relative to
// (name_dir, the task's cwd or root). A path whose file is no longer the
// socket's (unlinked, or replaced) marks the socket deleted: restore binds
// it and unlinks the file again.
func (s *Set) unixName(pid int, d *sockdiag.Unix, e *sk_unix.UnixSkEntry) error {
	if len(d.Name) == 0 || d.Name[0] == 0 {
		return nil // unnamed or abstract
	}
	name := string(bytes.TrimRight(d.Name, "\x00"))
	var dirs []string
	if path.IsAbs(name) {
		dirs = []string{"/"}
	} else {
		cwd, err := procfs.Cwd(pid)
		if err != nil {
			return err
		}
		root, err := procfs.Root(pid)
		if err != nil {
			return err
		}
		dirs = []string{cwd, root}
	}
	for _, dir := range dirs {
		var st unix.Stat_t
		p := fmt.Sprintf("/proc/%d/root%s", pid, path.Join(dir, name))
		if err := unix.Lstat(p, &st); err != nil {
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
				continue
			}
			return fmt.Errorf("stat its file %s: %w", name, err)
		}
		if !d.HasVFS || uint32(st.Ino) != d.VFSIno || !sameDev(st.Dev, d.VFSDev) {
			continue
		}
		uid, gid := st.Uid, st.Gid
		if s.UserNS != nil {
			uid, gid = ns.Inside(s.UserNS.UidMap, uid), ns.Inside(s.UserNS.GidMap, gid)
		}
		e.FilePerms = &sk_unix.FilePermsEntry{Mode: ptr(st.Mode), Uid: &uid, Gid: &gid}
		if !path.IsAbs(name) {
			e.NameDir = ptr(dir)
		}
		return nil
	}
	// Deleted: the restore binds the name for a moment where it was. A
	// directory that another filesystem's mount covers now (the socket's
	// file was on another) would get the file, and every connection
	// accepted from the socket would keep that mount busy.
	dir := path.Dir(path.Join(dirs[0], name))
	if d.HasVFS && dirOnOtherFS(pid, dir, d.VFSDev) {
		return fmt.Errorf("its name %s is under a mount made over its directory since it was bound: not supported yet", name)
	}
	e.Deleted = ptr(true)
	if !path.IsAbs(name) {
		e.NameDir = ptr(dirs[0])
	}
	return nil
}

// dirOnOtherFS says whether directory dir, as pid sees it, is on a mount
// of another filesystem than the superblock dev (the kernel's encoding, as
// sock_diag gives it). The mount's device comes from mountinfo, which, as
// sock_diag, shows the superblock's (st_dev of a btrfs subvolume does
// not). Whatever cannot be read says no.
func dirOnOtherFS(pid int, dir string, dev uint32) bool {
	var stx unix.Statx_t
	if unix.Statx(unix.AT_FDCWD, fmt.Sprintf("/proc/%d/root%s", pid, dir), 0, unix.STATX_MNT_ID, &stx) != nil || stx.Mask&unix.STATX_MNT_ID == 0 {
		return false
	}
	mounts, err := procfs.MountInfo(pid)
	if err != nil {
		return false
	}
	for _, m := range mounts {
		if uint64(m.ID) == stx.Mnt_id {
			return m.Major<<20|m.Minor != dev
		}
	}
	return false
}

// sameDev compares a stat st_dev (the user-space encoding) with the
// kernel's dev_t that sock_diag gives (major << 20 | minor).
func sameDev(st uint64, kdev uint32) bool {
	return unix.Major(st) == kdev>>20 && unix.Minor(st) == kdev&(1<<20-1)
}

// peekQueue reads everything queued to a socket without taking it: the
// peek offset walks the queue and is put back afterwards. A datagram
// (or seqpacket record) is one packet, read whole; a stream comes in the
// chunks the kernel gives. File descriptors in flight (SCM_RIGHTS) are
// refused: they would be files of their own to dump.
//
// A read of 0 bytes ends a stream's queue. For packets it is ambiguous: a
// zero-length datagram or record reads as 0 too, and once peeked the
// kernel skips it at that peek offset (skb->peeked), so the walk goes on;
// but a socket shut down for reading (the peer's shutdown(SHUT_WR)) gives
// 0 at the end of its queue, forever. There the first 0 ends the queue.
func peekQueue(fd int, typ uint8, rcvShut bool) (packets [][]byte, err error) {
	old, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEEK_OFF)
	if err != nil {
		return nil, fmt.Errorf("peek offset: %w", err)
	}
	defer func() {
		if rerr := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEEK_OFF, old); rerr != nil && err == nil {
			err = fmt.Errorf("put the peek offset back to %d: %w", old, rerr)
		}
	}()
	stream := typ == unix.SOCK_STREAM
	flags := unix.MSG_PEEK | unix.MSG_DONTWAIT
	if !stream {
		flags |= unix.MSG_TRUNC // answer a datagram's whole length
	}
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(4*maxFdsInMsg)+unix.CmsgSpace(unix.SizeofUcred))
	off, empties := 0, 0
	for range 1 << 24 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEEK_OFF, off); err != nil {
			return nil, fmt.Errorf("set peek offset %d: %w", off, err)
		}
		n, oobn, mflags, _, err := unix.Recvmsg(fd, buf, oob, flags)
		switch {
		case errors.Is(err, unix.EAGAIN):
			return packets, nil
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return nil, fmt.Errorf("peek at byte %d of the queue: %w", off, err)
		}
		if err := checkControl(oob[:oobn], mflags); err != nil {
			return nil, fmt.Errorf("packet %d of its queue (at byte %d) %w", len(packets)+1, off, err)
		}
		if n == 0 && (stream || rcvShut) {
			return packets, nil // shut down, and nothing more queued
		}
		if n == 0 {
			// A zero-length packet; a kernel that did not skip it once
			// peeked would give it again and again.
			if empties++; empties > maxEmptyPackets {
				return nil, fmt.Errorf("more than %d zero-length packets in a row at byte %d of the queue", maxEmptyPackets, off)
			}
		} else {
			empties = 0
		}
		if n > len(buf) {
			buf = make([]byte, n) // a datagram larger than buf: again, whole
			continue
		}
		packets = append(packets, append([]byte{}, buf[:n]...))
		off += n
	}
	return nil, fmt.Errorf("more than %d packets queued", 1<<24)
}

// maxEmptyPackets bounds a run of zero-length packets in a queue.
const maxEmptyPackets = 1 << 16

// errFdsInFlight marks a queue holding file descriptors.
var errFdsInFlight = errors.New("file descriptors in flight (SCM_RIGHTS) are not supported yet")

// checkControl refuses a peeked packet that carries file descriptors. The
// kernel installed copies of them in gocr: they are closed.
func checkControl(oob []byte, mflags int) error {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return fmt.Errorf("control message: %w", err)
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_RIGHTS {
			continue
		}
		fds, _ := unix.ParseUnixRights(&m)
		for _, f := range fds {
			unix.Close(f)
		}
		return fmt.Errorf("carries %d file descriptor(s): %w", len(fds), errFdsInFlight)
	}
	if mflags&unix.MSG_CTRUNC != 0 {
		return fmt.Errorf("carries more control data than fits: %w", errFdsInFlight)
	}
	return nil
}

// FinishUnix checks what can only be checked once every process's fds are
// known: the peer of each socket and the clients of each listener's
// pending connections are in the tree (a socket connected to something
// outside, a daemon's socket for instance, cannot be connected again:
// CRIU's --ext-unix-sk is not supported), and a datagram socket connected
// to a peer not connected back can reach it by its name again. Then it puts the clients of each listener's pending
// connections in files.img in the order accept returns them, the order
// restore connects them in.
func (s *Set) FinishUnix() error {
	u := s.usk
	if u == nil {
		return nil
	}
	for _, ino := range u.order {
		x := u.dumped[ino]
		if err := u.checkPeer(x); err != nil {
			return fmt.Errorf("%s: %w", x.where(), err)
		}
		if err := u.checkIcons(x); err != nil {
			return fmt.Errorf("%s: %w", x.where(), err)
		}
	}
	u.orderIcons(s.Entries)
	return nil
}

// checkPeer checks that a socket's peer can be restored with it.
func (u *unixDump) checkPeer(x *unixDumped) error {
	peer := x.e.GetPeer()
	if peer == 0 {
		if x.d.Type != unix.SOCK_DGRAM && x.d.State == sockdiag.StateEstablished &&
			x.d.Shutdown != rcvShutdown|sendShutdown {
			return fmt.Errorf("connected, but its peer is neither open nor waiting on a listener")
		}
		return nil // unconnected, or its peer is closed
	}
	p := u.dumped[peer]
	if p == nil {
		what := "connected to"
		if _, pending := u.iconOf[x.d.Ino]; pending {
			what = "a pending connection to the listener"
		}
		name := ""
		if d := u.diag[peer]; d != nil && len(d.Name) > 0 {
			name = fmt.Sprintf(" (%s)", printableName(d.Name))
		}
		return fmt.Errorf("%s unix socket %d%s, which no process of the dumped tree has open: "+
			"sockets connected outside the tree are not supported (CRIU's --ext-unix-sk)", what, peer, name)
	}
	if x.d.Type == unix.SOCK_DGRAM && p.e.GetPeer() != x.d.Ino && len(p.d.Name) == 0 {
		return fmt.Errorf("connected to unix socket %d (%s), which has no name to connect to again", peer, p.where())
	}
	return nil
}

// checkIcons checks a listener's pending connections: their clients are
// open in the tree (a closed client's connection could only be described
// by a socket no process has), and one that has sent data is not bound to
// a name of its own (TakePending gives it a new socket, which could not
// have that name while the old one holds it).
func (u *unixDump) checkIcons(x *unixDumped) error {
	for i, c := range x.d.Icons {
		if c == 0 {
			return fmt.Errorf("pending connection %d: its client is closed already: not supported", i+1)
		}
		cl := u.dumped[c]
		if cl == nil {
			return fmt.Errorf("pending connection %d: its client, unix socket %d, is not open in any process of the dumped tree: "+
				"sockets connected outside the tree are not supported (CRIU's --ext-unix-sk)", i+1, c)
		}
		if cl.d.WQueue != 0 && len(cl.d.Name) != 0 {
			return fmt.Errorf("pending connection %d from %s: a client bound to a name (%s) that has sent data on a connection not accepted yet is not supported",
				i+1, cl.where(), printableName(cl.d.Name))
		}
	}
	return nil
}

// orderIcons moves the clients of each listener's pending connections, in
// place among themselves, into the order of the listener's queue.
func (u *unixDump) orderIcons(entries []*fdinfo.FileEntry) {
	rank := map[*fdinfo.FileEntry]int{}
	for _, ino := range u.order {
		for i, c := range u.dumped[ino].d.Icons {
			if cl := u.dumped[c]; cl != nil {
				rank[cl.entry] = i
			}
		}
	}
	if len(rank) == 0 {
		return
	}
	var at []int
	var icons []*fdinfo.FileEntry
	for i, e := range entries {
		if _, ok := rank[e]; ok {
			at = append(at, i)
			icons = append(icons, e)
		}
	}
	slices.SortStableFunc(icons, func(a, b *fdinfo.FileEntry) int { return rank[a] - rank[b] })
	for i, pos := range at {
		entries[pos] = icons[i]
	}
}

// printableName shows a socket name: a path, or an abstract name as @name.
func printableName(name []byte) string {
	if len(name) > 0 && name[0] == 0 {
		return "@" + strings.ReplaceAll(string(name[1:]), "\x00", "@")
	}
	return string(bytes.TrimRight(name, "\x00"))
}

// unixBuild makes the unix sockets of an image, in gocr: by inode, from
// the entries of files.img.
type unixBuild struct {
	r       *Restorer
	ents    []*sk_unix.UnixSkEntry // files.img order
	byIno   map[uint32]*sk_unix.UnixSkEntry
	fds     map[uint32]int // made, by inode
	making  map[uint32]bool
	halves  map[uint32]int // the other end of a socket whose peer was closed, until its queue is filled
	deleted []deletedName  // names to unlink once every connect is done
	// madeDirs are the directories of deleted names that were gone too,
	// made for their bind, outermost first; removed with the names.
	madeDirs []string
}

// deletedName is the file a socket whose file was deleted got from bind,
// and where the file that has the name now was moved for the time.
type deletedName struct {
	path   string
	ino    uint64
	parked string // "" if the name was free
}

// makeUnixSockets makes every unix socket of the image, on a thread of its
// own that has joined the tree's network namespace (sockets belong to the
// namespace they are made in, abstract names too) and changed its root to
// the tree's (names are paths there).
func (r *Restorer) makeUnixSockets() error {
	b := &unixBuild{r: r, byIno: map[uint32]*sk_unix.UnixSkEntry{}, fds: map[uint32]int{},
		making: map[uint32]bool{}, halves: map[uint32]int{}}
	for _, fe := range r.order {
		if e := fe.GetUsk(); e != nil {
			b.ents = append(b.ents, e)
			b.byIno[e.GetIno()] = e
		}
	}
	err := ns.OnThrowawayThread(func() error {
		if err := r.enterTree(); err != nil {
			return err
		}
		err := b.build()
		if err != nil {
			b.removeNames() //nolint:errcheck // the build's error is the one to report
		}
		return err
	})
	for _, fd := range b.halves {
		unix.Close(fd)
	}
	if err != nil {
		for _, fd := range b.fds {
			unix.Close(fd)
		}
		return err
	}
	r.usk = map[uint32]int{}
	for _, e := range b.ents {
		r.usk[e.GetId()] = b.fds[e.GetIno()]
	}
	return nil
}

// enterTree moves the calling (throwaway) thread into the tree's network
// namespace and under its root.
func (r *Restorer) enterTree() error { return enterTree(r.NetNS, r.Root) }

// enterTree moves the calling (throwaway) thread into the network
// namespace of file netNS ("" to stay) and under root ("" to stay).
func enterTree(netNS, root string) error {
	if netNS != "" {
		fd, err := unix.Open(netNS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("network namespace: %w", err)
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("join network namespace %s: %w", netNS, err)
		}
	}
	if root != "" {
		if err := unix.Chroot(root); err != nil {
			return fmt.Errorf("chroot %s: %w", root, err)
		}
	}
	return unix.Chdir("/")
}

// build makes the sockets in an order where what one needs exists first:
// listeners and bound sockets (the names others connect to), then
// connections, accepted ones before the pending ones (an accept takes the
// oldest waiting connection), pending ones in their queue order; then the
// queues, options, shutdowns and flags.
func (b *unixBuild) build() error {
	for _, e := range b.ents {
		if e.GetState() == sockdiag.StateListen {
			if err := b.ensure(e); err != nil {
				return err
			}
		}
	}
	for _, e := range b.ents {
		if !b.pending(e) {
			if err := b.ensure(e); err != nil {
				return err
			}
		}
	}
	for _, e := range b.ents {
		if b.pending(e) {
			if err := b.ensure(e); err != nil {
				return err
			}
		}
	}
	for _, e := range b.ents {
		if err := b.fill(e); err != nil {
			return fmt.Errorf("unix socket %d: queue: %w", e.GetIno(), err)
		}
	}
	for _, e := range b.ents {
		if err := b.finish(e); err != nil {
			return fmt.Errorf("unix socket %d: %w", e.GetIno(), err)
		}
	}
	return b.removeNames()
}

// removeNames unlinks the files bind made for sockets whose files were
// deleted, then the directories made for them, innermost first.
func (b *unixBuild) removeNames() error {
	var errs []error
	for _, d := range slices.Backward(b.deleted) { // the last parked first
		errs = append(errs, d.unlink())
	}
	b.deleted = nil
	for _, dir := range slices.Backward(b.madeDirs) {
		if err := unix.Rmdir(dir); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("remove the directory %s made for a deleted socket's name: %w", dir, err))
		}
	}
	b.madeDirs = nil
	return errors.Join(errs...)
}

// makeParents makes the missing directories above the name p of a socket
// whose file was deleted (its directory may be gone as well), so bind can
// make the file for a moment.
func (b *unixBuild) makeParents(p string) error {
	abs, err := absName(p)
	if err != nil {
		return err
	}
	var missing []string
	for dir := path.Dir(abs); dir != "/"; dir = path.Dir(dir) {
		var st unix.Stat_t
		if err := unix.Lstat(dir, &st); err == nil {
			break
		} else if !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("stat %s: %w", dir, err)
		}
		missing = append(missing, dir)
	}
	for _, dir := range slices.Backward(missing) {
		if err := unix.Mkdir(dir, 0o700); err != nil {
			return fmt.Errorf("make the directory %s of a deleted socket's name: %w", dir, err)
		}
		b.madeDirs = append(b.madeDirs, dir)
	}
	return nil
}

// unlink removes the file bind made for a socket whose file was deleted,
// unless another socket's file has taken the path since, and puts back
// the file that was parked.
func (d deletedName) unlink() error {
	var st unix.Stat_t
	if err := unix.Lstat(d.path, &st); err == nil && st.Ino == d.ino {
		if err := unix.Unlink(d.path); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unlink the name %s of a socket whose file was deleted: %w", d.path, err)
		}
	}
	if d.parked != "" {
		return unpark(d.parked, d.path)
	}
	return nil
}

// park moves the file at p, the name of a socket whose file was deleted,
// aside for the time the socket needs the name (the name went to another
// file after the socket's was deleted: a FIFO, another socket). It
// returns where the file went, "" if p was free. The file of another
// socket of the image whose name was deleted too, bound there a moment
// ago, is unlinked instead: it was deleted as well.
func (b *unixBuild) park(p string) (string, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); errors.Is(err, unix.ENOENT) {
		return "", nil
	} else if err != nil {
		return "", fmt.Errorf("stat %s: %w", p, err)
	}
	abs, err := absName(p)
	if err != nil {
		return "", err
	}
	if slices.ContainsFunc(b.deleted, func(d deletedName) bool { return d.path == abs && d.ino == st.Ino }) {
		if err := unix.Unlink(p); err != nil {
			return "", fmt.Errorf("remove the file %s of another socket whose name was deleted: %w", p, err)
		}
		return "", nil
	}
	for i := 0; ; i++ {
		parked := fmt.Sprintf("%s.gocr-parked.%d", p, i)
		err := unix.Renameat2(unix.AT_FDCWD, p, unix.AT_FDCWD, parked, unix.RENAME_NOREPLACE)
		switch {
		case err == nil:
			return parked, nil
		case errors.Is(err, unix.EEXIST) && i < 100:
			continue
		default:
			return "", fmt.Errorf("move %s, which has the name of a socket whose file was deleted, aside to %s: %w", p, parked, err)
		}
	}
}

// unpark puts a parked file back at p. A parked socket file whose name a
// socket of the image has taken since is the stale file of the dumped
// socket that had that name: it goes.
func unpark(parked, p string) error {
	err := unix.Renameat2(unix.AT_FDCWD, parked, unix.AT_FDCWD, p, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EEXIST) {
		var st unix.Stat_t
		if unix.Lstat(parked, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFSOCK {
			err = unix.Unlink(parked)
		}
	}
	if err != nil {
		return fmt.Errorf("put %s back at %s: %w", parked, p, err)
	}
	return nil
}

// pending says whether e is the client of a connection not accepted yet:
// its peer is a listener.
func (b *unixBuild) pending(e *sk_unix.UnixSkEntry) bool {
	p := b.byIno[e.GetPeer()]
	return e.GetPeer() != 0 && p != nil && p.GetState() == sockdiag.StateListen && e.GetType() != unix.SOCK_DGRAM
}

// ensure makes the socket of e, and first what it connects to.
func (b *unixBuild) ensure(e *sk_unix.UnixSkEntry) error {
	ino := e.GetIno()
	if _, ok := b.fds[ino]; ok {
		return nil
	}
	if b.making[ino] {
		return fmt.Errorf("unix socket %d: connected in a loop the image cannot describe", ino)
	}
	b.making[ino] = true
	defer delete(b.making, ino)
	if err := b.make(e); err != nil {
		return fmt.Errorf("unix socket %d: %w", ino, err)
	}
	return nil
}

// make decides how a socket comes to be by its state and peer.
func (b *unixBuild) make(e *sk_unix.UnixSkEntry) error {
	peer := b.byIno[e.GetPeer()]
	mutual := peer != nil && peer.GetPeer() == e.GetIno() && peer != e
	switch {
	case e.GetState() == sockdiag.StateListen:
		return b.listener(e)
	case mutual:
		return b.pair(e, peer)
	case b.pending(e):
		return b.connectTo(e, peer)
	case e.GetType() == unix.SOCK_DGRAM && peer != nil:
		// Connected one way: it reaches its peer by the peer's name
		// (its own, for one connected to itself).
		return b.connectTo(e, peer)
	case e.GetType() != unix.SOCK_DGRAM && e.GetState() == sockdiag.StateEstablished:
		return b.halfClosed(e)
	case e.GetType() == unix.SOCK_DGRAM && peer == nil && len(e.GetName()) == 0 && len(b.r.SkQueues[e.GetId()]) > 0:
		// Nothing can reach an unnamed datagram socket but the other end
		// of its socketpair: its queue came from an end since closed.
		return b.halfClosed(e)
	case e.GetPeer() != 0 && peer == nil:
		return fmt.Errorf("its peer, unix socket %d, is not in the image", e.GetPeer())
	}
	fd, err := b.socket(e)
	if err != nil {
		return err
	}
	return b.bind(fd, e)
}

// socket makes a socket of e's type, non-blocking until finish sets its
// flags.
func (b *unixBuild) socket(e *sk_unix.UnixSkEntry) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, int(e.GetType())|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return -1, fmt.Errorf("socket type %d: %w", e.GetType(), err)
	}
	b.fds[e.GetIno()] = fd
	return fd, nil
}

// listener makes a listening socket with its name and backlog.
func (b *unixBuild) listener(e *sk_unix.UnixSkEntry) error {
	fd, err := b.socket(e)
	if err != nil {
		return err
	}
	if err := b.bind(fd, e); err != nil {
		return err
	}
	if err := unix.Listen(fd, int(e.GetBacklog())); err != nil {
		return fmt.Errorf("listen with backlog %d: %w", e.GetBacklog(), err)
	}
	return nil
}

// pair makes two sockets connected to each other. A stream connection one
// end of which was accepted from a listener of the image is made through
// that listener again, so the accepted end carries the listener's name;
// any other pair is a socketpair whose ends are then bound to their names.
func (b *unixBuild) pair(x, y *sk_unix.UnixSkEntry) error {
	if x.GetType() != unix.SOCK_DGRAM {
		for _, acc := range []struct{ client, server *sk_unix.UnixSkEntry }{{x, y}, {y, x}} {
			if l := b.listenerNamed(acc.server); l != nil {
				return b.accepted(acc.client, acc.server, l)
			}
		}
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, int(x.GetType())|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("socketpair type %d with unix socket %d: %w", x.GetType(), y.GetIno(), err)
	}
	b.fds[x.GetIno()], b.fds[y.GetIno()] = fds[0], fds[1]
	if err := b.bind(fds[0], x); err != nil {
		return err
	}
	if err := b.bind(fds[1], y); err != nil {
		return fmt.Errorf("unix socket %d: %w", y.GetIno(), err)
	}
	return nil
}

// listenerNamed finds the listener of the image whose name e carries: e
// was accepted from it.
func (b *unixBuild) listenerNamed(e *sk_unix.UnixSkEntry) *sk_unix.UnixSkEntry {
	if len(e.GetName()) == 0 || e.GetState() == sockdiag.StateListen {
		return nil
	}
	for _, l := range b.ents {
		if l.GetState() == sockdiag.StateListen && l.GetType() == e.GetType() &&
			bytes.Equal(l.GetName(), e.GetName()) && l.GetNameDir() == e.GetNameDir() {
			return l
		}
	}
	return nil
}

// accepted connects client to listener l and accepts the connection as
// server. Nothing else waits on l yet: pending connections come last.
func (b *unixBuild) accepted(client, server, l *sk_unix.UnixSkEntry) error {
	if err := b.ensure(l); err != nil {
		return err
	}
	if err := b.connectTo(client, l); err != nil {
		return err
	}
	fd, _, err := unix.Accept4(b.fds[l.GetIno()], unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
	if err != nil {
		return fmt.Errorf("accept the connection of unix socket %d on listener %d: %w", client.GetIno(), l.GetIno(), err)
	}
	b.fds[server.GetIno()] = fd
	return nil
}

// connectTo makes e (bound to its name if it has one) and connects it to
// peer by peer's name.
func (b *unixBuild) connectTo(e, peer *sk_unix.UnixSkEntry) error {
	if peer != e { // a datagram socket connected to its own name is bound below
		if err := b.ensure(peer); err != nil {
			return err
		}
	}
	fd, err := b.socket(e)
	if err != nil {
		return err
	}
	if err := b.bind(fd, e); err != nil {
		return err
	}
	return withName(peer, func(sa *unix.SockaddrUnix) error {
		if err := unix.Connect(fd, sa); err != nil {
			return fmt.Errorf("connect to unix socket %d (%s): %w", peer.GetIno(), printableName(peer.GetName()), err)
		}
		return nil
	})
}

// halfClosed makes a connected socket whose peer was closed: one end of a
// pair whose other end is closed once the queue is filled from it. An end
// accepted from a listener of the image is accepted from it again, so it
// has the listener's name; any other is one end of a socketpair.
func (b *unixBuild) halfClosed(e *sk_unix.UnixSkEntry) error {
	if l := b.listenerNamed(e); l != nil {
		if err := b.ensure(l); err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_UNIX, int(e.GetType())|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("socket type %d: %w", e.GetType(), err)
		}
		b.halves[e.GetIno()] = fd
		if err := withName(l, func(sa *unix.SockaddrUnix) error { return unix.Connect(fd, sa) }); err != nil {
			return fmt.Errorf("connect to listener %d (%s): %w", l.GetIno(), printableName(l.GetName()), err)
		}
		a, _, err := unix.Accept4(b.fds[l.GetIno()], unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
		if err != nil {
			return fmt.Errorf("accept on listener %d: %w", l.GetIno(), err)
		}
		b.fds[e.GetIno()] = a
		return nil
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, int(e.GetType())|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("socketpair type %d: %w", e.GetType(), err)
	}
	b.fds[e.GetIno()], b.halves[e.GetIno()] = fds[0], fds[1]
	return b.bind(fds[0], e)
}

// withName runs fn with e's address; a relative name is resolved in its
// directory (name_dir), which the thread enters for the call. The caller
// is a throwaway thread under the tree's root (enterTree).
func withName(e *sk_unix.UnixSkEntry, fn func(sa *unix.SockaddrUnix) error) error {
	name := e.GetName()
	if len(name) == 0 {
		return fmt.Errorf("unix socket %d has no name to reach it by", e.GetIno())
	}
	if name[0] == 0 {
		return fn(&unix.SockaddrUnix{Name: "@" + string(name[1:])})
	}
	p := string(bytes.TrimRight(name, "\x00"))
	if !path.IsAbs(p) && e.GetNameDir() != "" {
		if err := unix.Chdir(e.GetNameDir()); err != nil {
			return fmt.Errorf("chdir %s for the relative name %s: %w", e.GetNameDir(), p, err)
		}
		defer unix.Chdir("/")
	}
	return fn(&unix.SockaddrUnix{Name: p})
}

// bind gives fd e's name. A path must be free: a socket file left there
// (by the dumped process, or the last restore) is removed first, anything
// else is an error. The file then gets its mode and owner back.
func (b *unixBuild) bind(fd int, e *sk_unix.UnixSkEntry) error {
	if len(e.GetName()) == 0 {
		return nil
	}
	return withName(e, func(sa *unix.SockaddrUnix) error {
		abstract := e.GetName()[0] == 0
		parked := ""
		if !abstract && e.GetDeleted() {
			if err := b.makeParents(sa.Name); err != nil {
				return err
			}
			var err error
			if parked, err = b.park(sa.Name); err != nil {
				return err
			}
		} else if !abstract {
			if err := unlinkStaleSocket(sa.Name); err != nil {
				return err
			}
		}
		if err := unix.Bind(fd, sa); err != nil {
			err = fmt.Errorf("bind to %s: %w", printableName(e.GetName()), err)
			if parked != "" {
				err = errors.Join(err, unpark(parked, sa.Name))
			}
			return err
		}
		if abstract {
			return nil
		}
		if e.GetDeleted() {
			// Recorded at once, so that whatever fails next the name
			// goes and the parked file comes back (removeNames).
			p, err := absName(sa.Name)
			if err == nil && parked != "" {
				parked, err = absName(parked)
			}
			if err != nil {
				return err
			}
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				b.deleted = append(b.deleted, deletedName{p, 0, parked})
				return fmt.Errorf("stat %s after bind: %w", p, err)
			}
			b.deleted = append(b.deleted, deletedName{p, st.Ino, parked})
		}
		return b.setPerms(sa.Name, e.GetFilePerms())
	})
}

// absName makes a name relative to the thread's cwd absolute, so it can be
// unlinked later from anywhere.
func absName(name string) (string, error) {
	if path.IsAbs(name) {
		return name, nil
	}
	cwd, err := unix.Getwd()
	if err != nil {
		return "", err
	}
	return path.Join(cwd, name), nil
}

// unlinkStaleSocket removes a socket file at p, which would make bind
// fail; a file of any other kind stays, and is an error.
func unlinkStaleSocket(p string) error {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("stat %s: %w", p, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return fmt.Errorf("bind to %s: the path is taken by a file that is not a socket (mode %#o)", p, st.Mode)
	}
	if err := unix.Unlink(p); err != nil {
		return fmt.Errorf("remove the stale socket file %s: %w", p, err)
	}
	return nil
}

// setPerms gives a socket's file the mode and owner it had.
func (b *unixBuild) setPerms(p string, fp *sk_unix.FilePermsEntry) error {
	if fp == nil {
		return nil
	}
	if err := unix.Fchmodat(unix.AT_FDCWD, p, fp.GetMode()&07777, 0); err != nil {
		return fmt.Errorf("chmod %s %#o: %w", p, fp.GetMode()&07777, err)
	}
	uid, gid := fp.GetUid(), fp.GetGid()
	if u := b.r.UserNS; u != nil {
		var ok1, ok2 bool
		uid, ok1 = ns.Outside(u.UidMap, uid)
		gid, ok2 = ns.Outside(u.GidMap, gid)
		if !ok1 || !ok2 {
			return fmt.Errorf("chown %s: owner %d:%d is not mapped in the tree's user namespace", p, fp.GetUid(), fp.GetGid())
		}
	}
	if err := unix.Fchownat(unix.AT_FDCWD, p, int(uid), int(gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown %s %d:%d: %w", p, uid, gid, err)
	}
	return nil
}

// fill sends the packets queued to e, from the end the kernel would have
// taken them from: its peer when the two are connected to each other (or
// the other end of a half-closed pair), else — a datagram socket reached
// by name — its peer if it has one (no other may send to it), or a
// temporary unnamed socket.
func (b *unixBuild) fill(e *sk_unix.UnixSkEntry) error {
	if sent := b.r.SkPending[e.GetId()]; len(sent) > 0 {
		// The client of a pending connection: what it had sent waits
		// on the listener's side, sent again through the client.
		if !b.pending(e) {
			return fmt.Errorf("%d packets of a pending connection, but its peer is not a listener", len(sent))
		}
		if err := growSndbuf(b.fds[e.GetIno()], sent); err != nil {
			return err
		}
		if err := sendAll(b.fds[e.GetIno()], nil, sent); err != nil {
			return err
		}
	}
	packets := b.r.SkQueues[e.GetId()]
	if len(packets) == 0 {
		return nil
	}
	peer := b.byIno[e.GetPeer()]
	from := -1
	if h, ok := b.halves[e.GetIno()]; ok {
		from = h
	} else if peer != nil && peer.GetPeer() == e.GetIno() {
		from = b.fds[peer.GetIno()]
	}
	if from >= 0 {
		if err := growSndbuf(from, packets); err != nil {
			return err
		}
		if e.GetType() == unix.SOCK_STREAM {
			return writeAll(from, bytes.Join(packets, nil))
		}
		return sendAll(from, nil, packets)
	}
	if e.GetType() != unix.SOCK_DGRAM || len(e.GetName()) == 0 {
		return fmt.Errorf("%d packets queued, but no socket of the image can send them to it", len(packets))
	}
	if peer != nil {
		from = b.fds[peer.GetIno()]
	} else {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("temporary sender: %w", err)
		}
		defer unix.Close(fd)
		from = fd
	}
	if err := growSndbuf(from, packets); err != nil {
		return err
	}
	return withName(e, func(sa *unix.SockaddrUnix) error { return sendAll(from, sa, packets) })
}

// growSndbuf makes room for all the packets at once in the sender's
// buffer; finish sets the saved size afterwards.
func growSndbuf(fd int, packets [][]byte) error {
	size := 1 << 20
	for _, p := range packets {
		size += 2*len(p) + 1024 // payload and the kernel's bookkeeping per packet
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, size); err != nil {
		return fmt.Errorf("grow the sender's buffer to %d: %w", size, err)
	}
	return nil
}

// sendAll sends each packet as one record, to a name if to is set.
func sendAll(fd int, to *unix.SockaddrUnix, packets [][]byte) error {
	for i, p := range packets {
		var err error
		if to == nil {
			err = unix.Sendmsg(fd, p, nil, nil, 0)
		} else {
			err = unix.Sendmsg(fd, p, nil, to, 0)
		}
		if err != nil {
			return fmt.Errorf("packet %d of %d (%d bytes): %w", i+1, len(packets), len(p), err)
		}
	}
	return nil
}

// writeAll writes a stream's bytes in flight.
func writeAll(fd int, data []byte) error {
	for len(data) > 0 {
		n, err := unix.Write(fd, data)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("write %d bytes: %w", len(data), err)
		}
		data = data[n:]
	}
	return nil
}

// finish gives a socket its options, shutdowns and file flags, once its
// queue is filled (a shut down end could not send into its peer).
func (b *unixBuild) finish(e *sk_unix.UnixSkEntry) error {
	ino := e.GetIno()
	if h, ok := b.halves[ino]; ok {
		unix.Close(h) // the peer was closed: the kernel shuts this end down
		delete(b.halves, ino)
	}
	return finishSocket(b.fds[ino], e)
}

// finishSocket gives a socket e's options, shutdowns and file flags.
func finishSocket(fd int, e *sk_unix.UnixSkEntry) error {
	if err := restoreSockOpts(fd, e.GetOpts()); err != nil {
		return err
	}
	if how, ok := shutdownHow[e.GetShutdown()]; ok {
		if err := unix.Shutdown(fd, how); err != nil && !errors.Is(err, unix.ENOTCONN) {
			return fmt.Errorf("shutdown %v: %w", e.GetShutdown(), err)
		}
	}
	fl := int(e.GetFlags()) &^ unix.O_ACCMODE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl); err != nil {
		return fmt.Errorf("set flags %#o: %w", fl, err)
	}
	return nil
}

var shutdownHow = map[sk_opts.SkShutdown]int{
	sk_opts.SkShutdown_READ: unix.SHUT_RD, sk_opts.SkShutdown_WRITE: unix.SHUT_WR, sk_opts.SkShutdown_BOTH: unix.SHUT_RDWR,
}

// openUnix hands out the socket made for a file entry, making all of them
// on first use.
func (r *Restorer) openUnix(e *fdinfo.FileEntry) (int, error) {
	if r.usk == nil {
		if err := r.makeUnixSockets(); err != nil {
			return -1, err
		}
	}
	fd, ok := r.usk[e.GetId()]
	if !ok {
		return -1, fmt.Errorf("unix socket %d: handed out already", e.GetUsk().GetIno())
	}
	delete(r.usk, e.GetId())
	return fd, nil
}
