package files

import (
	"fmt"
	"os"
	"slices"
	"unsafe"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/regfile"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/tty"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/abi"
	"github.com/gocr/gocr/engine/procfs"
)

// Pseudo-terminals (Unix98 ptys). A pty is a pair: a master, opened
// through the ptmx node of a devpts instance, which makes the pair, and
// slave N, /dev/pts/N of that instance, opened any number of times, and
// the controlling terminal of at most one session. As CRIU has it, every
// open file of a pty is a TtyFileEntry in files.img naming the
// TtyInfoEntry of its side in tty-info.img (id 2N+1 for the master, 2N
// for the slave) and a regular file entry (regf_id) with the path and
// mount it was opened at, which is where restore finds the devpts
// instance again.
//
// The dump reads the pty's state through a copy of the task's fd
// (pidfd_getfd), never by opening it again: reopening a ptmx makes a new
// pty, and reopening a slave changes its open count. It only reads.
// Termios, locked termios and window size are the slave's: the kernel's
// mode ioctls on a master act on its slave, so either side gives them, and
// the master sets them again on restore before any slave is open. The
// master also tells the session the pty is the controlling terminal of
// and its foreground group (TIOCGSID, TIOCGPGRP on a slave answer only a
// process of that session); the engine maps them into the tree's pids
// (see engine/terminal.go) and makes the session leader take the
// terminal again.
//
// Bytes queued in a pty, typed and not yet read or written and not yet
// read by the other side, are not saved, as CRIU does not save them
// either: a terminal never promised delivery across a checkpoint, and
// reading them would take them from the task.
//
// A slave whose master is outside the tree is the terminal of a shell the
// tree was started from (--shell-job): restore gives such fds gocr's own
// terminal, as CRIU does, and leaves that terminal's state alone: it
// outlived the tree and belongs to whoever runs gocr now.

// ttyInfoID is the id CRIU gives the TtyInfoEntry of one side of pty index.
func ttyInfoID(index uint32, master bool) uint32 {
	if master {
		return index<<1 | 1
	}
	return index << 1
}

// PtyDump is what the dump saw of one pty: the TtyInfoEntry of each side
// the tree has open (nil for a side it has not) and, when it has the
// master, the session whose controlling terminal the pty is and its
// foreground process group, as gocr's pid namespace numbers them (0:
// none). The engine sets sid and pgrp of the entries in the tree's pids.
type PtyDump struct {
	Index         uint32
	Master, Slave *tty.TtyInfoEntry
	Sid, Pgrp     int
	// masterFd is gocr's copy of the first fd on the master (-1: the
	// tree has none), for DumpTtyData; masterID and slaveID are the file
	// ids of the first fd of each side.
	masterFd          int
	masterID, slaveID uint32
}

// isPtmx and isPtySlave tell the two sides of a pty by their device.
func isPtmx(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && unix.Major(st.Rdev) == abi.TtyAuxMajor && unix.Minor(st.Rdev) == abi.PtmxMinor
}

func isPtySlave(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && unix.Major(st.Rdev) == abi.PtySlaveMajor
}

// dumpTty records an fd of a pty, master or slave.
func (s *Set) dumpTty(pid int, fd Fd, st *unix.Stat_t) (uint32, error) {
	master := isPtmx(st)
	cp, err := CopyFd(pid, fd.Fd)
	if err != nil {
		return 0, err
	}
	kept := false // the first copy of the master stays, for DumpTtyData
	defer func() {
		if !kept {
			unix.Close(cp)
		}
	}()
	var index uint32
	if master {
		n, err := unix.IoctlGetInt(cp, unix.TIOCGPTN)
		if err != nil {
			return 0, fmt.Errorf("pty master: TIOCGPTN: %w", err)
		}
		if fd.Info.TtyIndex >= 0 && fd.Info.TtyIndex != n {
			return 0, fmt.Errorf("pty master: fdinfo says index %d, TIOCGPTN %d", fd.Info.TtyIndex, n)
		}
		index = uint32(n)
	} else {
		index = unix.Minor(st.Rdev)
	}
	if s.ptys == nil {
		s.ptys = map[uint32]*PtyDump{}
	}
	p := s.ptys[index]
	if p == nil {
		p = &PtyDump{Index: index, masterFd: -1}
		s.ptys[index] = p
	}
	side := &p.Slave
	if master {
		side = &p.Master
	}
	first := *side == nil
	if first {
		info, err := readTtyInfo(cp, index, master, st)
		if err != nil {
			return 0, fmt.Errorf("pty %d: %w", index, err)
		}
		if master {
			if p.Sid, p.Pgrp, err = ttySession(cp); err != nil {
				return 0, fmt.Errorf("pty %d: %w", index, err)
			}
		}
		*side = info
		s.TtyInfos = append(s.TtyInfos, info)
	}
	flags := fd.Info.Flags &^ unix.O_CLOEXEC
	regID := s.add(regEntry(fd.Target, flags, 0, fd.Info.MntID, st))
	typ := fdinfo.FdTypes_TTY
	id := s.add(&fdinfo.FileEntry{Type: &typ, Tty: &tty.TtyFileEntry{
		TtyInfoId: ptr(ttyInfoID(index, master)), Flags: &flags, Fown: noOwner(), RegfId: &regID,
	}})
	switch {
	case first && master:
		p.masterFd, p.masterID, kept = cp, id, true
	case first:
		p.slaveID = id
	}
	return id, nil
}

// Ptys lists the ptys the dump found, by index.
func (s *Set) Ptys() []*PtyDump {
	var out []*PtyDump
	for _, p := range s.ptys {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *PtyDump) int { return int(a.Index) - int(b.Index) })
	return out
}

// readTtyInfo reads one side's state through fd, a copy of the task's.
func readTtyInfo(fd int, index uint32, master bool, st *unix.Stat_t) (*tty.TtyInfoEntry, error) {
	var t, locked abi.Termios
	var ws abi.Winsize
	if err := ioctlPtr(fd, unix.TCGETS, unsafe.Pointer(&t)); err != nil {
		return nil, fmt.Errorf("TCGETS: %w", err)
	}
	if err := ioctlPtr(fd, unix.TIOCGLCKTRMIOS, unsafe.Pointer(&locked)); err != nil {
		return nil, fmt.Errorf("TIOCGLCKTRMIOS: %w", err)
	}
	if err := ioctlPtr(fd, unix.TIOCGWINSZ, unsafe.Pointer(&ws)); err != nil {
		return nil, fmt.Errorf("TIOCGWINSZ: %w", err)
	}
	excl, err := unix.IoctlGetInt(fd, unix.TIOCGEXCL)
	if err != nil {
		return nil, fmt.Errorf("TIOCGEXCL: %w", err)
	}
	var pkt, lock int
	if master {
		// Packet mode and the lock are the master's alone.
		if pkt, err = unix.IoctlGetInt(fd, unix.TIOCGPKT); err != nil {
			return nil, fmt.Errorf("TIOCGPKT: %w", err)
		}
		if lock, err = unix.IoctlGetInt(fd, unix.TIOCGPTLCK); err != nil {
			return nil, fmt.Errorf("TIOCGPTLCK: %w", err)
		}
	}
	typ := tty.TtyType_PTY
	info := &tty.TtyInfoEntry{
		Id: ptr(ttyInfoID(index, master)), Type: &typ,
		Locked: ptr(lock != 0), Exclusive: ptr(excl != 0), PacketMode: ptr(pkt != 0),
		Sid: ptr(uint32(0)), Pgrp: ptr(uint32(0)),
		Rdev: ptr(uint32(st.Rdev)), Dev: ptr(uint32(st.Dev)),
		Termios: termiosEntry(&t), TermiosLocked: termiosEntry(&locked),
		Winsize: &tty.WinsizeEntry{WsRow: ptr(uint32(ws.Row)), WsCol: ptr(uint32(ws.Col)),
			WsXpixel: ptr(uint32(ws.Xpixel)), WsYpixel: ptr(uint32(ws.Ypixel))},
		Pty: &tty.TtyPtyEntry{Index: &index},
	}
	if !master {
		// The owner of /dev/pts/N, which the restore's new slave gets
		// again (as gocr's pid namespace sees it; the engine maps it).
		info.Uid, info.Gid = ptr(st.Uid), ptr(st.Gid)
	}
	return info, nil
}

// ttySession reads, on a master, the session whose controlling terminal
// its slave is and the foreground group: 0, 0 when it is nobody's.
func ttySession(master int) (sid, pgrp int, err error) {
	sid, err = unix.IoctlGetInt(master, unix.TIOCGSID)
	if err == unix.ENOTTY {
		return 0, 0, nil // no session has it
	}
	if err != nil {
		return 0, 0, fmt.Errorf("TIOCGSID: %w", err)
	}
	if pgrp, err = unix.IoctlGetInt(master, unix.TIOCGPGRP); err != nil {
		return 0, 0, fmt.Errorf("TIOCGPGRP: %w", err)
	}
	return sid, pgrp, nil
}

func termiosEntry(t *abi.Termios) *tty.TermiosEntry {
	cc := make([]uint32, len(t.Cc))
	for i, c := range t.Cc {
		cc[i] = uint32(c)
	}
	// The speeds live in c_cflag (CBAUD); the image's fields stay 0, as
	// CRIU writes them.
	return &tty.TermiosEntry{CIflag: &t.Iflag, COflag: &t.Oflag, CCflag: &t.Cflag, CLflag: &t.Lflag,
		CLine: ptr(uint32(t.Line)), CIspeed: ptr(uint32(0)), COspeed: ptr(uint32(0)), CCc: cc}
}

// termiosFrom is the kernel's termios of an image's; ok is false for one
// with too few control characters.
func termiosFrom(e *tty.TermiosEntry) (t abi.Termios, ok bool) {
	if len(e.GetCCc()) < abi.NCCS {
		return t, false
	}
	t = abi.Termios{Iflag: e.GetCIflag(), Oflag: e.GetCOflag(), Cflag: e.GetCCflag(), Lflag: e.GetCLflag(), Line: uint8(e.GetCLine())}
	for i := range t.Cc {
		t.Cc[i] = uint8(e.GetCCc()[i])
	}
	return t, true
}

func ioctlPtr(fd int, req uint, p unsafe.Pointer) error {
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(p)); e != 0 {
		return e
	}
	return nil
}

// CheckTtyInfo checks a TtyInfoEntry of tty-info.img: a pty with its
// index and control characters (CRIU writes 19), the only kind gocr
// restores.
func CheckTtyInfo(e *tty.TtyInfoEntry) error {
	if e.GetType() != tty.TtyType_PTY || e.GetPty() == nil {
		return fmt.Errorf("id %d: a %s terminal: only ptys are restored", e.GetId(), e.GetType())
	}
	if e.GetId()>>1 != e.GetPty().GetIndex() {
		return fmt.Errorf("id %d: pty index %d does not match it", e.GetId(), e.GetPty().GetIndex())
	}
	for _, t := range []*tty.TermiosEntry{e.GetTermios(), e.GetTermiosLocked()} {
		if _, ok := termiosFrom(t); t != nil && !ok {
			return fmt.Errorf("id %d: termios with %d control characters, want %d", e.GetId(), len(t.GetCCc()), abi.NCCS)
		}
	}
	return nil
}

// ptyPair is a pty the restore made, by its index: gocr's own open of
// the slave when the image has slave files (held to the end of the
// restore, so a controlling terminal set meanwhile stays: the last close
// of a slave takes it from its session) and that slave's device, against
// which slaves opened by path are checked.
type ptyPair struct {
	peer   int
	peerSt unix.Stat_t
}

// indexPtys finds the master and slave file entries of every pty of the
// image.
func (r *Restorer) indexPtys() {
	r.ptyMaster, r.ptySlaves = map[uint32]uint32{}, map[uint32][]uint32{}
	for id, e := range r.entries {
		if t := e.GetTty(); t != nil {
			index := t.GetTtyInfoId() >> 1
			if t.GetTtyInfoId()&1 != 0 {
				r.ptyMaster[index] = id
			} else {
				r.ptySlaves[index] = append(r.ptySlaves[index], id)
			}
		}
	}
	for _, ids := range r.ptySlaves {
		slices.Sort(ids)
	}
}

// HasPtyMaster reports whether the image has the master of pty index: a
// pty the restore makes, not the terminal of a shell outside the tree.
func (r *Restorer) HasPtyMaster(index uint32) bool {
	_, ok := r.ptyMaster[index]
	return ok
}

// openTty gives the file of a TtyFileEntry: the pair is made on first use
// of either side, with every file of it.
func (r *Restorer) openTty(id uint32, e *tty.TtyFileEntry) (int, error) {
	index := e.GetTtyInfoId() >> 1
	if !r.HasPtyMaster(index) {
		return r.openShellTty(index, e)
	}
	if _, err := r.pty(index); err != nil {
		return -1, err
	}
	fd, ok := r.open[id]
	if !ok {
		return -1, fmt.Errorf("pty %d: file %d was not opened with its pair", index, id)
	}
	return fd, nil
}

// PtySlave returns gocr's own fd of the slave of pty index, making the
// pair if need be: the fd a session leader takes the terminal with.
func (r *Restorer) PtySlave(index uint32) (int, error) {
	p, err := r.pty(index)
	if err != nil {
		return -1, err
	}
	if p.peer < 0 {
		return -1, fmt.Errorf("pty %d: no process of the image has its slave open", index)
	}
	return p.peer, nil
}

// pty makes pty index with the same index in the devpts instance its
// master was opened from: the master with its flags, then its state
// (termios, window size, locked termios, packet mode), then every slave
// file of the image, then the lock and the exclusive flags.
func (r *Restorer) pty(index uint32) (*ptyPair, error) {
	if p, ok := r.ptys[index]; ok {
		return p, nil
	}
	masterID := r.ptyMaster[index]
	e := r.entries[masterID].GetTty()
	reg, err := r.ttyReg(e)
	if err != nil {
		return nil, fmt.Errorf("pty %d: %w", index, err)
	}
	info, ok := r.TtyInfos[e.GetTtyInfoId()]
	if !ok {
		return nil, fmt.Errorf("pty %d: tty info %d is not in tty-info.img", index, e.GetTtyInfoId())
	}
	master, err := r.openPtmx(reg, index, int(e.GetFlags()))
	if err != nil {
		return nil, fmt.Errorf("pty %d: %w", index, err)
	}
	r.open[masterID] = master // Close closes it
	p := &ptyPair{peer: -1}
	r.ptys[index] = p
	if err := setTtyState(master, info); err != nil {
		return nil, fmt.Errorf("pty %d: %w", index, err)
	}
	if info.GetPacketMode() {
		if err := unix.IoctlSetPointerInt(master, unix.TIOCPKT, 1); err != nil {
			return nil, fmt.Errorf("pty %d: packet mode: %w", index, err)
		}
	}
	if err := unix.IoctlSetPointerInt(master, unix.TIOCSPTLCK, 0); err != nil {
		return nil, fmt.Errorf("pty %d: unlock: %w", index, err)
	}
	if err := r.openSlaves(index, master, p); err != nil {
		return nil, fmt.Errorf("pty %d: %w", index, err)
	}
	if err := r.refillPty(index, master, p); err != nil {
		return nil, fmt.Errorf("pty %d: queued data: %w", index, err)
	}
	if info.GetLocked() {
		if err := unix.IoctlSetPointerInt(master, unix.TIOCSPTLCK, 1); err != nil {
			return nil, fmt.Errorf("pty %d: lock: %w", index, err)
		}
	}
	if info.GetExclusive() {
		if err := unix.IoctlSetInt(master, unix.TIOCEXCL, 0); err != nil {
			return nil, fmt.Errorf("pty %d: master exclusive: %w", index, err)
		}
	}
	return p, nil
}

// openPtmx opens the master of pty index through reg, a ptmx node. A
// devpts instance hands out the lowest free index: the lower ones are
// held open until index comes, then closed. An index already taken fails.
func (r *Restorer) openPtmx(reg *regfile.RegFileEntry, index uint32, flags int) (int, error) {
	var held []int
	defer func() {
		for _, fd := range held {
			unix.Close(fd)
		}
	}()
	for {
		fd, err := r.openRegFlags(reg, flags)
		if err != nil {
			return -1, fmt.Errorf("open its master: %w (no devpts instance there?)", err)
		}
		n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
		switch {
		case err != nil:
			unix.Close(fd)
			return -1, fmt.Errorf("%s is no pty master (TIOCGPTN: %w): no devpts instance there?", reg.GetName(), err)
		case uint32(n) == index:
			return fd, nil
		case uint32(n) > index || len(held) > int(index)+64:
			unix.Close(fd)
			return -1, fmt.Errorf("index %d is taken in the devpts instance of %s (it gave %d)", index, reg.GetName(), n)
		}
		held = append(held, fd)
	}
}

// setTtyState sets termios, window size and locked termios through fd;
// termios before the locked ones, which would keep their fields from
// changing.
func setTtyState(fd int, info *tty.TtyInfoEntry) error {
	if e := info.GetTermios(); e != nil {
		t, _ := termiosFrom(e)
		if err := ioctlPtr(fd, unix.TCSETS, unsafe.Pointer(&t)); err != nil {
			return fmt.Errorf("TCSETS: %w", err)
		}
	}
	if e := info.GetWinsize(); e != nil {
		ws := abi.Winsize{Row: uint16(e.GetWsRow()), Col: uint16(e.GetWsCol()), Xpixel: uint16(e.GetWsXpixel()), Ypixel: uint16(e.GetWsYpixel())}
		if err := ioctlPtr(fd, unix.TIOCSWINSZ, unsafe.Pointer(&ws)); err != nil {
			return fmt.Errorf("TIOCSWINSZ: %w", err)
		}
	}
	if e := info.GetTermiosLocked(); e != nil {
		t, _ := termiosFrom(e)
		if err := ioctlPtr(fd, unix.TIOCSLCKTRMIOS, unsafe.Pointer(&t)); err != nil {
			return fmt.Errorf("TIOCSLCKTRMIOS: %w", err)
		}
	}
	return nil
}

// openSlaves opens every slave file of the image of pty index by its path
// and mount, checked against gocr's own open of the new pair's slave
// (TIOCGPTPEER), which also gets the slave's owner, mode and exclusive
// flag back.
func (r *Restorer) openSlaves(index uint32, master int, p *ptyPair) error {
	ids := r.ptySlaves[index]
	if len(ids) == 0 {
		return nil
	}
	peer, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(master), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		return fmt.Errorf("open its slave (TIOCGPTPEER): %w", errno)
	}
	p.peer = int(peer)
	if err := unix.Fstat(p.peer, &p.peerSt); err != nil {
		return fmt.Errorf("stat its slave: %w", err)
	}
	for _, id := range ids {
		e := r.entries[id].GetTty()
		reg, err := r.ttyReg(e)
		if err != nil {
			return err
		}
		fd, err := r.openRegFlags(reg, int(e.GetFlags()))
		if err != nil {
			return fmt.Errorf("slave: %w", err)
		}
		r.open[id] = fd // Close closes it
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return fmt.Errorf("stat slave %s: %w", reg.GetName(), err)
		}
		if st.Rdev != p.peerSt.Rdev || st.Dev != p.peerSt.Dev {
			return fmt.Errorf("%s is not the slave of the pty gocr made (another devpts instance?)", reg.GetName())
		}
		if mode := reg.GetMode() & 0o7777; reg.Mode != nil && mode != st.Mode&0o7777 {
			if err := unix.Fchmod(fd, mode); err != nil {
				return fmt.Errorf("chmod slave %s %#o: %w", reg.GetName(), mode, err)
			}
		}
	}
	info := r.TtyInfos[ttyInfoID(index, false)]
	if info.Uid != nil && info.Gid != nil && (info.GetUid() != p.peerSt.Uid || info.GetGid() != p.peerSt.Gid) {
		if err := unix.Fchown(p.peer, int(info.GetUid()), int(info.GetGid())); err != nil {
			return fmt.Errorf("chown its slave to %d:%d: %w", info.GetUid(), info.GetGid(), err)
		}
	}
	if info.GetExclusive() {
		if err := unix.IoctlSetInt(p.peer, unix.TIOCEXCL, 0); err != nil {
			return fmt.Errorf("slave exclusive: %w", err)
		}
	}
	return nil
}

// ttyReg is the regular file entry that says where a tty file was opened.
func (r *Restorer) ttyReg(e *tty.TtyFileEntry) (*regfile.RegFileEntry, error) {
	if re := r.entries[e.GetRegfId()]; e.RegfId != nil && re.GetReg() != nil {
		return re.GetReg(), nil
	}
	return nil, fmt.Errorf("tty file %d: regf_id %d is not a regular file entry", e.GetId(), e.GetRegfId())
}

// openShellTty gives a file of a pty whose master was outside the tree —
// the terminal of the shell the tree was started from — gocr's own
// terminal, opened anew with the file's flags (--shell-job).
func (r *Restorer) openShellTty(index uint32, e *tty.TtyFileEntry) (int, error) {
	if !r.ShellJob {
		return -1, fmt.Errorf("pty %d: its master was outside the dumped tree (the terminal of a shell): restore with --shell-job to give it gocr's own terminal", index)
	}
	path, err := OwnTerminal()
	if err != nil {
		return -1, fmt.Errorf("pty %d: --shell-job: %w", index, err)
	}
	flags := int(e.GetFlags()) &^ (unix.O_CREAT | unix.O_EXCL | unix.O_TRUNC)
	fd, err := unix.Open(path, flags|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("pty %d: --shell-job: open gocr's terminal %s: %w", index, path, err)
	}
	return fd, nil
}

// OwnTerminal names gocr's own terminal, to reopen: the fd among stdin,
// stdout and stderr that is its controlling terminal, or, without one, the
// first of them that is a terminal (CRIU takes its stdin).
func OwnTerminal() (string, error) {
	st, err := procfs.Stat(os.Getpid())
	if err != nil {
		return "", err
	}
	ctty := uint64(st.TtyNr)
	for fd := range 3 {
		var s unix.Stat_t
		if unix.Fstat(fd, &s) != nil || s.Mode&unix.S_IFMT != unix.S_IFCHR {
			continue
		}
		if _, err := unix.IoctlGetTermios(fd, unix.TCGETS); err != nil {
			continue // not a terminal
		}
		if ctty == 0 || s.Rdev == ctty {
			return fmt.Sprintf("/proc/self/fd/%d", fd), nil
		}
	}
	if ctty != 0 {
		return "", fmt.Errorf("gocr's controlling terminal (%d:%d) is none of its stdin, stdout and stderr", unix.Major(ctty), unix.Minor(ctty))
	}
	return "", fmt.Errorf("gocr has no terminal: no controlling terminal, and none of stdin, stdout and stderr is one")
}
