package engine

import (
	"errors"
	"fmt"
	"strconv"
	"unsafe"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/tty"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gocr/gocr/engine/abi"
	"github.com/gocr/gocr/engine/files"
	"github.com/gocr/gocr/engine/image"
	"github.com/gocr/gocr/engine/ns"
)

// Controlling terminals. The files of a pty are dumped and restored in
// engine/files (tty.go); what makes a pty a session's controlling terminal
// is the tree's business: the session leader took it (TIOCSCTTY, or by
// opening it), the processes it forked since have it too, and one process
// group of the session is in the foreground.
//
// Dump: every process with a controlling terminal must be in a session
// whose leader is in the tree, and that terminal a pty whose master and
// slave the tree has open, or else the terminal is a shell's outside the
// tree: refused, unless --shell-job says so, and then the files of that
// pty (its master outside the tree) are given gocr's own terminal on
// restore, and the restored tree, in gocr's session, has it as its
// controlling terminal (see files.OwnTerminal).
//
// Restore: the session leader's stub takes the terminal right after its
// setsid, before it forks anything (the processes of its session inherit
// it), and sets the foreground group once the groups exist (makeTree).

// dumpTerminals checks the controlling terminals of the tree and writes the
// session and foreground group of each pty into its entries, as pids of
// the tree (0 for a session outside the tree).
func (d *dumper) dumpTerminals() error {
	live := map[int]*procDump{} // by gocr's pid
	for _, p := range d.procs {
		if !p.zombie {
			live[p.pid] = p
		}
	}
	leads := func(sid int) bool { p := live[sid]; return p != nil && p.stat.Session == sid }
	ptys := map[uint32]*files.PtyDump{}
	var outside []uint32
	for _, pt := range d.files.Ptys() {
		ptys[pt.Index] = pt
		if err := d.ptySession(pt, leads); err != nil {
			return err
		}
		if pt.Master == nil {
			outside = append(outside, pt.Index)
		}
	}
	if len(outside) > 1 {
		return fmt.Errorf("--shell-job: the tree has slaves of %d ptys whose masters are outside it (%v): a restored tree gets only gocr's own terminal", len(outside), outside)
	}
	for _, p := range d.procs {
		if p.zombie {
			continue
		}
		if err := d.checkCtty(p, ptys, leads, live); err != nil {
			return fmt.Errorf("pid %d: %w", p.pid, err)
		}
	}
	// A /dev/tty is opened again in the session, as its controlling
	// terminal: the process holding it must have one.
	for _, f := range d.files.DevTtyFds() {
		p := live[f.Pid]
		if p == nil {
			continue
		}
		if p.stat.TtyNr == 0 {
			return fmt.Errorf("pid %d: fd %d: /dev/tty of a process with no controlling terminal (its session lost it): not supported yet", f.Pid, f.Fd)
		}
		// The terminal it was opened on (TIOCGDEV), which a process that
		// changed sessions since no longer has as its own.
		dev, err := devTtyOf(f)
		if err != nil {
			return fmt.Errorf("pid %d: fd %d: /dev/tty: %w", f.Pid, f.Fd, err)
		}
		if dev != uint32(p.stat.TtyNr) {
			return fmt.Errorf("pid %d: fd %d: /dev/tty of terminal %#x, not of its controlling terminal %#x: not supported yet", f.Pid, f.Fd, dev, p.stat.TtyNr)
		}
	}
	if err := d.files.DumpTtyData(); err != nil {
		return err
	}
	if d.userns != nil {
		for _, info := range d.files.TtyInfos {
			if info.Uid != nil {
				info.Uid = ptr(ns.Inside(d.userns.UidMap, info.GetUid()))
				info.Gid = ptr(ns.Inside(d.userns.GidMap, info.GetGid()))
			}
		}
	}
	return nil
}

// devTtyOf is the terminal an fd on /dev/tty is on, as tty_nr encodes it.
func devTtyOf(f files.DevTtyFd) (uint32, error) {
	cp, err := files.CopyFd(f.Pid, f.Fd)
	if err != nil {
		return 0, err
	}
	defer unix.Close(cp)
	var dev uint32
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(cp), unix.TIOCGDEV, uintptr(unsafe.Pointer(&dev))); e != 0 {
		return 0, fmt.Errorf("TIOCGDEV: %w", e)
	}
	return dev, nil
}

// ptySession refuses a pty whose master or session is outside the tree
// (but under --shell-job), and sets its session and foreground group.
func (d *dumper) ptySession(pt *files.PtyDump, leads func(int) bool) error {
	if pt.Master == nil {
		if !d.o.ShellJob {
			return fmt.Errorf("pty %d: the tree has its slave open but not its master: the terminal of a shell it was started from? (dump with --shell-job)", pt.Index)
		}
		return nil
	}
	if pt.Sid == 0 {
		return nil
	}
	if !leads(pt.Sid) {
		if !d.o.ShellJob {
			return fmt.Errorf("pty %d: it is the controlling terminal of session %d, whose leader is outside the tree (dump with --shell-job to leave it out)", pt.Index, pt.Sid)
		}
		return nil // left to no session on restore
	}
	// A foreground group outside the tree (0 when none is left) is not
	// set on restore: the leader's group is then in the foreground.
	sid, pgrp := uint32(d.vtid[pt.Sid]), uint32(d.vtid[pt.Pgrp])
	for _, info := range []*tty.TtyInfoEntry{pt.Master, pt.Slave} {
		if info != nil {
			info.Sid, info.Pgrp = ptr(sid), ptr(pgrp)
		}
	}
	return nil
}

// checkCtty checks the controlling terminal of p (tty_nr of its stat).
func (d *dumper) checkCtty(p *procDump, ptys map[uint32]*files.PtyDump, leads func(int) bool, live map[int]*procDump) error {
	sid := p.stat.Session
	if p.stat.TtyNr == 0 {
		if l := live[sid]; l != nil && leads(sid) && l.stat.TtyNr != 0 {
			return fmt.Errorf("no controlling terminal, while the leader of its session %d has one: not supported yet", sid)
		}
		return nil
	}
	dev := uint64(p.stat.TtyNr)
	if unix.Major(dev) != abi.PtySlaveMajor {
		return fmt.Errorf("its controlling terminal, device %d:%d, is not a pty: not supported yet", unix.Major(dev), unix.Minor(dev))
	}
	index := unix.Minor(dev)
	if !leads(sid) {
		if !d.o.ShellJob {
			return fmt.Errorf("its controlling terminal, pty %d, is that of session %d outside the tree (a shell's? dump with --shell-job)", index, sid)
		}
		return nil
	}
	pt := ptys[index]
	switch {
	case pt == nil || pt.Master == nil:
		return fmt.Errorf("its session %d is the tree's, its controlling terminal pty %d is not: the tree does not hold its master (a session leader cannot be given gocr's terminal)", sid, index)
	case pt.Slave == nil:
		return fmt.Errorf("its controlling terminal, pty %d, has no slave open in the tree: not supported yet", index)
	case pt.Sid != sid:
		return fmt.Errorf("its controlling terminal, pty %d, says it is session %d's, not %d's", index, pt.Sid, sid)
	}
	return nil
}

// readTtyInfos reads tty-info.img, when the image has ptys, and checks
// that every tty file names an entry of it and a path, and that the
// session and foreground group of each pty are the tree's.
func readTtyInfos(dir *image.Dir, img *restoreImages) error {
	img.ttyInfos, img.ctty = map[uint32]*tty.TtyInfoEntry{}, map[int]*tty.TtyInfoEntry{}
	if dir.Exists(image.TtyInfoFile) {
		infos, err := image.ReadAll[tty.TtyInfoEntry](dir, image.TtyInfo, image.TtyInfoFile)
		if err != nil {
			return err
		}
		for i, e := range infos {
			if err := files.CheckTtyInfo(e); err != nil {
				return fmt.Errorf("%s: [%d]: %w", image.TtyInfoFile, i, err)
			}
			img.ttyInfos[e.GetId()] = e
		}
	}
	masters := map[uint32]bool{}
	for i, f := range img.files {
		t := f.GetTty()
		if t == nil {
			continue
		}
		if img.ttyInfos[t.GetTtyInfoId()] == nil {
			return fmt.Errorf("%s: [%d].tty.tty_info_id: %d is not in %s", image.FilesFile, i, t.GetTtyInfoId(), image.TtyInfoFile)
		}
		if r := img.fileByID[t.GetRegfId()]; t.RegfId == nil || r.GetReg() == nil {
			return fmt.Errorf("%s: [%d].tty.regf_id: %d is not a regular file in %s", image.FilesFile, i, t.GetRegfId(), image.FilesFile)
		}
		if t.GetTtyInfoId()&1 != 0 {
			masters[t.GetTtyInfoId()>>1] = true
		}
	}
	if err := readTtyData(dir, img); err != nil {
		return err
	}
	for _, e := range img.ttyInfos {
		index := e.GetPty().GetIndex()
		if e.GetSid() == 0 || !masters[index] {
			continue // nobody's terminal, or a shell's outside the tree
		}
		lead := img.byPid[int(e.GetSid())]
		if lead == nil || lead.zombie || lead.tree.GetSid() != e.GetSid() {
			return fmt.Errorf("%s: id %d: pty %d is the terminal of session %d, which has no leader in %s", image.TtyInfoFile, e.GetId(), index, e.GetSid(), image.PstreeFile)
		}
		if g := e.GetPgrp(); g != 0 && img.byPid[int(g)] == nil {
			return fmt.Errorf("%s: id %d: foreground group %d of pty %d has no leader in %s", image.TtyInfoFile, e.GetId(), g, index, image.PstreeFile)
		}
		img.ctty[int(e.GetSid())] = e
	}
	return nil
}

// readTtyData reads tty-data.img, when the image has one: each entry
// names a tty file of files.img whose pty the tree holds the master of,
// one entry per side.
func readTtyData(dir *image.Dir, img *restoreImages) error {
	img.ttyData = map[uint32][]byte{}
	if !dir.Exists(image.TtyDataFile) {
		return nil
	}
	entries, err := image.ReadAll[tty.TtyDataEntry](dir, image.TtyData, image.TtyDataFile)
	if err != nil {
		return err
	}
	sides := map[uint32]bool{} // by tty info id
	for i, e := range entries {
		t := img.fileByID[e.GetTtyId()].GetTty()
		switch {
		case t == nil:
			return fmt.Errorf("%s: [%d].tty_id: %d is not a tty file in %s", image.TtyDataFile, i, e.GetTtyId(), image.FilesFile)
		case sides[t.GetTtyInfoId()]:
			return fmt.Errorf("%s: [%d].tty_id: %d: a second entry for the same side of pty %d", image.TtyDataFile, i, e.GetTtyId(), t.GetTtyInfoId()>>1)
		case len(e.GetData()) >= files.MaxTtyQueue:
			return fmt.Errorf("%s: [%d].data: %d bytes, more than the %d a pty's line discipline takes", image.TtyDataFile, i, len(e.GetData()), files.MaxTtyQueue-1)
		}
		sides[t.GetTtyInfoId()] = true
		img.ttyData[e.GetTtyId()] = e.GetData()
	}
	return nil
}

// ttyInfosOutside gives the files restorer the pty entries with their
// owners as gocr sees them: outside the tree's user namespace, if it has
// its own.
func (r *restorer) ttyInfosOutside() (map[uint32]*tty.TtyInfoEntry, error) {
	u := r.img.ns.user
	if u == nil {
		return r.img.ttyInfos, nil
	}
	out := map[uint32]*tty.TtyInfoEntry{}
	for id, e := range r.img.ttyInfos {
		if e.Uid != nil && e.Gid != nil {
			e = proto.Clone(e).(*tty.TtyInfoEntry)
			uid, ok1 := ns.Outside(u.GetUidMap(), e.GetUid())
			gid, ok2 := ns.Outside(u.GetGidMap(), e.GetGid())
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("%s: id %d: owner %d:%d is not mapped in the tree's user namespace", image.TtyInfoFile, id, e.GetUid(), e.GetGid())
			}
			e.Uid, e.Gid = &uid, &gid
		}
		out[id] = e
	}
	return out, nil
}

// takeTerminal makes a session leader's stub, right after its setsid,
// take its controlling terminal again: gocr's own open of the pty's slave,
// passed in, TIOCSCTTY, closed. The processes of its session are forked
// afterwards and inherit the terminal.
func (p *procRestorer) takeTerminal() error {
	info := p.img.ctty[p.vpid]
	if info == nil {
		return nil
	}
	err := p.onTerminal(info, func(fd uint64) error {
		if _, err := p.t.Syscall(unix.SYS_IOCTL, fd, unix.TIOCSCTTY, 0); err != nil {
			return fmt.Errorf("take pty %d as controlling terminal (TIOCSCTTY): %w", info.GetPty().GetIndex(), err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return p.openDevTtys()
}

// openDevTtys opens every /dev/tty the processes of the leader's session
// hold, in the leader's stub, now that it has its controlling terminal
// (see files/devtty.go): through an O_PATH handle of the node, passed in
// and reopened by its /proc/self/fd name, which needs neither the tree's
// root nor its mounts to be in place yet. gocr takes the file with
// pidfd_getfd and places it with the rest of the fd table.
func (p *procRestorer) openDevTtys() error {
	seen := map[uint32]bool{}
	for _, q := range p.img.procs {
		if q.zombie || q.tree.GetSid() != uint32(p.vpid) || q.filesID != q.tree.GetPid() {
			continue
		}
		for _, f := range q.fds {
			id := f.GetId()
			if seen[id] {
				continue
			}
			seen[id] = true
			node, err := p.fr.DevTtyNode(id)
			if err == nil && node >= 0 {
				err = p.openDevTty(id, node)
			}
			if err != nil {
				return fmt.Errorf("pid %d: fd %d: /dev/tty: %w", q.tree.GetPid(), f.GetFd(), err)
			}
		}
	}
	return nil
}

// openDevTty opens file id, a /dev/tty whose O_PATH node gocr holds, in
// the stub and gives gocr's copy of it to the files restorer. The stub
// opens the node by its number in gocr's view of the stub's fds
// (/proc/STUB/fd, a directory passed in with the node): the stub's own
// root, pivoted to the tree's, may have no /proc.
func (p *procRestorer) openDevTty(id uint32, node int) error {
	defer unix.Close(node)
	dir, err := unix.Open(fmt.Sprintf("/proc/%d/fd", p.pid), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("the stub's fds: %w", err)
	}
	defer unix.Close(dir)
	got, err := p.pass.Send(p.t, p.sock, fdPassOff, []int{dir, node})
	if err != nil {
		return err
	}
	var errs []error
	closeIn := func(fd uint64, what string) {
		if _, err := p.t.Syscall(unix.SYS_CLOSE, fd); err != nil {
			errs = append(errs, fmt.Errorf("close %s fd %d: %w", what, fd, err))
		}
	}
	fd, err := p.openDevTtyIn(uint64(got[0]), got[1], p.fr.DevTtyFlags(id))
	closeIn(uint64(got[0]), "passed directory")
	closeIn(uint64(got[1]), "passed node")
	if err == nil {
		var local int
		local, err = files.CopyFd(p.pid, int(fd))
		closeIn(fd, "/dev/tty")
		if err == nil {
			p.fr.SetOpened(id, local)
		}
	}
	return errors.Join(append([]error{err}, errs...)...)
}

// openDevTtyIn opens, in the stub, the node it has as fd node, through
// the directory of its fds it has as fd dir.
func (p *procRestorer) openDevTtyIn(dir uint64, node, flags int) (uint64, error) {
	addr, err := p.t.WriteString(pathOff, strconv.Itoa(node))
	if err != nil {
		return 0, err
	}
	fd, err := p.t.Syscall(unix.SYS_OPENAT, dir, addr, uint64(flags|unix.O_CLOEXEC))
	if err != nil {
		return 0, fmt.Errorf("open it in the session leader: %w", err)
	}
	return fd, nil
}

// setForeground puts the foreground group of a session leader's terminal
// back, once every group exists.
func (p *procRestorer) setForeground() error {
	info := p.img.ctty[p.vpid]
	if info == nil || info.GetPgrp() == 0 {
		return nil
	}
	addr, err := p.t.WriteU64s(pathOff, []uint64{uint64(info.GetPgrp())})
	if err != nil {
		return err
	}
	return p.onTerminal(info, func(fd uint64) error {
		if _, err := p.t.Syscall(unix.SYS_IOCTL, fd, unix.TIOCSPGRP, addr); err != nil {
			return fmt.Errorf("foreground group %d of pty %d (TIOCSPGRP): %w", info.GetPgrp(), info.GetPty().GetIndex(), err)
		}
		return nil
	})
}

// onTerminal runs do on the slave of the pty of info, passed into the
// stub for the call and closed there after it.
func (p *procRestorer) onTerminal(info *tty.TtyInfoEntry, do func(fd uint64) error) error {
	local, err := p.fr.PtySlave(info.GetPty().GetIndex())
	if err != nil {
		return err
	}
	got, err := p.pass.Send(p.t, p.sock, fdPassOff, []int{local})
	if err != nil {
		return err
	}
	err = do(uint64(got[0]))
	if _, cerr := p.t.Syscall(unix.SYS_CLOSE, uint64(got[0])); cerr != nil && err == nil {
		err = fmt.Errorf("close passed terminal fd %d: %w", got[0], cerr)
	}
	return err
}
