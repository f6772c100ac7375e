package image

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"text/tabwriter"

	criu_core "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-core"
	criu_sa "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-sa"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	fsimg "github.com/checkpoint-restore/go-criu/v7/crit/images/fs"
	ipc_msg "github.com/checkpoint-restore/go-criu/v7/crit/images/ipc-msg"
	ipc_sem "github.com/checkpoint-restore/go-criu/v7/crit/images/ipc-sem"
	ipc_shm "github.com/checkpoint-restore/go-criu/v7/crit/images/ipc-shm"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/mm"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pstree"
	seccompimg "github.com/checkpoint-restore/go-criu/v7/crit/images/seccomp"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/timens"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/userns"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/utsns"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gocr/gocr/engine/image/gocrpb"
)

// Show writes a readable summary of an image directory for `gocr show`:
// the process tree, then per task its command, memory map, pages dumped,
// fds and non-default signal dispositions, then the stats. A missing or
// damaged image is reported in place and the summary goes on; only a
// directory that cannot be opened, or a failed write to w, is an error.
func Show(dir string, w io.Writer) error {
	d, err := Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	s := &shower{d: d, out: &errWriter{w: w}}
	s.run()
	return s.out.err
}

// errWriter keeps the first write error so Show can print freely.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return len(p), nil
	}
	_, e.err = e.w.Write(p)
	return len(p), nil
}

type shower struct {
	d       *Dir
	out     *errWriter
	files   map[uint32]*fdinfo.FileEntry
	mqueues map[uint32]*gocrpb.MqueueFileEntry // by file id
}

func (s *shower) printf(format string, args ...any) { fmt.Fprintf(s.out, format, args...) }

// problem says why an image could not be shown, shortening "not found".
func (s *shower) problem(indent, name string, err error) {
	if errors.Is(err, fs.ErrNotExist) {
		s.printf("%s%s: missing\n", indent, name)
		return
	}
	s.printf("%s%v\n", indent, err)
}

func (s *shower) run() {
	s.printf("images: %s\n", s.d.Path())
	inv, err := s.d.ReadInventory()
	if err != nil {
		s.problem("", InventoryFile, err)
	} else {
		s.printf("format: version %d, lsm %s\n", inv.GetImgVersion(), inv.GetLsmtype())
	}
	s.files = make(map[uint32]*fdinfo.FileEntry)
	if files, err := ReadAll[fdinfo.FileEntry](s.d, Files, FilesFile); err != nil {
		s.problem("", FilesFile, err)
	} else {
		for _, f := range files {
			s.files[f.GetId()] = f
		}
	}
	s.mqueues = map[uint32]*gocrpb.MqueueFileEntry{}
	if s.d.Exists(GocrMqueueFilesFile) {
		if mq, err := ReadAll[gocrpb.MqueueFileEntry](s.d, GocrMqueueFiles, GocrMqueueFilesFile); err != nil {
			s.problem("", GocrMqueueFilesFile, err)
		} else {
			for _, e := range mq {
				s.mqueues[e.GetId()] = e
			}
		}
	}
	tree, err := ReadAll[pstree.PstreeEntry](s.d, Pstree, PstreeFile)
	if err != nil {
		s.problem("", PstreeFile, err)
	} else {
		s.tree(tree)
		if len(tree) > 0 && inv != nil {
			s.namespaces(inv.GetRootIds(), tree)
		}
		for _, p := range tree {
			s.task(p)
		}
	}
	s.stats()
}

func (s *shower) tree(tree []*pstree.PstreeEntry) {
	s.printf("\nprocess tree:\n")
	tw := tabwriter.NewWriter(s.out, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "  PID\tPPID\tPGID\tSID\tTHREADS\n")
	for _, p := range tree {
		th := make([]string, len(p.GetThreads()))
		for i, t := range p.GetThreads() {
			th[i] = fmt.Sprint(t)
		}
		fmt.Fprintf(tw, "  %d\t%d\t%d\t%d\t%s\n", p.GetPid(), p.GetPpid(), p.GetPgid(), p.GetSid(), strings.Join(th, ","))
	}
	tw.Flush()
}

// namespaces lists the namespaces the tree's root had of its own (its ids
// differ from the inventory's root_ids) with what gocr saved of them, and
// a time namespace the root made for its children.
func (s *shower) namespaces(root *criu_core.TaskKobjIdsEntry, tree []*pstree.PstreeEntry) {
	p := tree[0]
	core, err := ReadOne[criu_core.CoreEntry](s.d, Core, CoreFile(p.GetPid()))
	if err != nil || core.GetIds() == nil || root == nil {
		return
	}
	ids := core.GetIds()
	kinds := []struct {
		name       string
		root, task *uint32
	}{{"user", root.UserNsId, ids.UserNsId}, {"pid", root.PidNsId, ids.PidNsId}, {"mnt", root.MntNsId, ids.MntNsId},
		{"uts", root.UtsNsId, ids.UtsNsId}, {"ipc", root.IpcNsId, ids.IpcNsId}, {"net", root.NetNsId, ids.NetNsId},
		{"cgroup", root.CgroupNsId, ids.CgroupNsId}, {"time", root.TimeNsId, ids.TimeNsId}}
	var own []string
	for _, k := range kinds {
		if k.root == nil || k.task == nil || *k.root == *k.task {
			continue
		}
		d := fmt.Sprintf("%s %d", k.name, *k.task)
		switch k.name {
		case "pid":
			if h, err := ReadOne[pstree.PstreeEntry](s.d, Pstree, HostPstreeFile); err == nil {
				d += fmt.Sprintf(" (pid %d outside)", h.GetPid())
			}
		case "uts":
			if u, err := ReadOne[utsns.UtsnsEntry](s.d, Utsns, UtsnsFile(*k.task)); err == nil {
				d += fmt.Sprintf(" (hostname %q)", u.GetNodename())
			}
		case "ipc":
			d += s.ipcObjects(*k.task)
		case "user":
			if u, err := ReadOne[userns.UsernsEntry](s.d, Userns, UsernsFile(*k.task)); err == nil && len(u.GetUidMap()) > 0 {
				m := u.GetUidMap()[0]
				d += fmt.Sprintf(" (uid %d is %d outside, %d ids)", m.GetFirst(), m.GetLowerFirst(), m.GetCount())
			}
		case "time":
			d += s.timeClocks(*k.task)
		}
		own = append(own, d)
	}
	// A root that made a time namespace for its children stays out of it.
	if rt := root.TimeNsId; rt != nil && ids.TimeNsId != nil && *rt == *ids.TimeNsId && len(tree) > 1 {
		if c, err := ReadOne[criu_core.CoreEntry](s.d, Core, CoreFile(tree[1].GetPid())); err == nil {
			if t := c.GetIds().TimeNsId; t != nil && *t != *rt {
				own = append(own, fmt.Sprintf("time %d of the root's children%s", *t, s.timeClocks(*t)))
			}
		}
	}
	if len(own) > 0 {
		s.printf("\nnamespaces of its own: %s\n", strings.Join(own, ", "))
	}
}

// timeClocks gives the clocks saved of a time namespace: as they read
// inside it at dump time.
func (s *shower) timeClocks(id uint32) string {
	e, err := ReadOne[timens.TimensEntry](s.d, Timens, TimensFile(id))
	if err != nil {
		return ""
	}
	m, b := e.GetMonotonic(), e.GetBoottime()
	return fmt.Sprintf(" (clocks inside at dump: monotonic %d.%09ds, boottime %d.%09ds)", m.GetTvSec(), m.GetTvNsec(), b.GetTvSec(), b.GetTvNsec())
}

// ipcObjects counts the objects saved of an ipc namespace.
func (s *shower) ipcObjects(id uint32) string {
	// count counts the entries of kind head in a file; follow says how
	// many entries of which kind follow each (a queue's messages).
	count := func(k Kind, name string, head proto.Message, follow func() (int, proto.Message)) int {
		if !s.d.Exists(name) {
			return 0
		}
		r, err := s.d.Reader(k, name)
		if err != nil {
			return 0
		}
		defer r.Close()
		n := 0
		for r.Next(head) {
			n++
			if follow == nil {
				continue
			}
			k, m := follow()
			for range k {
				if !r.Next(m) {
					return n
				}
			}
		}
		return n
	}
	msg, mq := &ipc_msg.IpcMsgEntry{}, &gocrpb.MqueueEntry{}
	return fmt.Sprintf(" (SysV: %d shm, %d sem, %d msg; %d POSIX message queues)",
		count(IpcnsShm, IpcnsShmFile(id), &ipc_shm.IpcShmEntry{}, nil),
		count(IpcnsSem, IpcnsSemFile(id), &ipc_sem.IpcSemEntry{}, nil),
		count(IpcnsMsg, IpcnsMsgFile(id), msg, func() (int, proto.Message) { return int(msg.GetQnum()), &ipc_msg.IpcMsg{} }),
		count(GocrMqueue, GocrMqueueFile(id), mq, func() (int, proto.Message) { return int(mq.GetCurmsgs()), &gocrpb.MqueueMsg{} }))
}

func (s *shower) task(p *pstree.PstreeEntry) {
	pid := p.GetPid()
	core, err := ReadOne[criu_core.CoreEntry](s.d, Core, CoreFile(pid))
	comm := "?"
	if err == nil {
		comm = core.GetTc().GetComm()
	}
	s.printf("\ntask %d (%s):\n", pid, comm)
	if err != nil {
		s.problem("  ", CoreFile(pid), err)
	}
	s.memory(pid)
	s.fds(pid, core)
	s.signals(pid, core)
	s.seccomp(p)
}

// seccomp prints the seccomp mode of each thread that has one, and how
// many filters its chain in seccomp.img holds.
func (s *shower) seccomp(p *pstree.PstreeEntry) {
	var filters []*seccompimg.SeccompFilter
	read := false
	for _, tid := range p.GetThreads() {
		core, err := ReadOne[criu_core.CoreEntry](s.d, Core, CoreFile(tid))
		if err != nil {
			continue // said for the leader already
		}
		tc := core.GetThreadCore()
		switch tc.GetSeccompMode() {
		case criu_core.SeccompMode_disabled:
			continue
		case criu_core.SeccompMode_filter:
			if !read {
				read = true
				if e, err := ReadOne[seccompimg.SeccompEntry](s.d, Seccomp, SeccompFile); err == nil {
					filters = e.GetSeccompFilters()
				} else {
					s.problem("  ", SeccompFile, err)
				}
			}
			// Oldest first, through prev, to the newest (no prev); a
			// loop in a damaged image stops at len(filters).
			n, insns := 0, 0
			for i, more := tc.GetSeccompFilter(), true; more && int(i) < len(filters) && n < len(filters); n++ {
				f := filters[i]
				insns += len(f.GetFilter()) / 8
				more, i = f.Prev != nil, f.GetPrev()
			}
			s.printf("  seccomp: thread %d in filter mode, %d filters (%d instructions) from %s entry %d\n", tid, n, insns, SeccompFile, tc.GetSeccompFilter())
		default:
			s.printf("  seccomp: thread %d in %s mode\n", tid, tc.GetSeccompMode())
		}
	}
}

func (s *shower) memory(pid uint32) {
	m, err := ReadOne[mm.MmEntry](s.d, Mm, MmFile(pid))
	if err != nil {
		s.problem("  ", MmFile(pid), err)
	} else {
		s.printf("  memory map (%d VMAs):\n", len(m.GetVmas()))
		tw := tabwriter.NewWriter(s.out, 0, 8, 1, ' ', 0)
		for _, v := range m.GetVmas() {
			fmt.Fprintf(tw, "    %x-%x\t%s\t%s\t%s\n", v.GetStart(), v.GetEnd(),
				sizeString(v.GetEnd()-v.GetStart()), protString(v.GetProt(), v.GetFlags()), s.backing(v.GetStatus(), v.GetShmid(), v.GetPgoff()))
		}
		tw.Flush()
	}
	pr, err := s.d.PageReader(pid)
	if err != nil {
		s.problem("  ", PagemapFile(pid), err)
		return
	}
	defer pr.Close()
	var present, parent, lazy, runs uint64
	for pr.Next() {
		r := pr.Run()
		runs++
		switch {
		case r.Present():
			present += r.NrPages
		case r.Flags&PeParent != 0:
			parent += r.NrPages
		default:
			lazy += r.NrPages
		}
	}
	s.printf("  pages dumped: %d (%s) in %d runs, in %s", present, sizeString(present*PageSize), runs, PagesFile(pr.PagesID()))
	if parent+lazy > 0 {
		s.printf("; %d in parent, %d lazy", parent, lazy)
	}
	s.printf("\n")
	if err := pr.Err(); err != nil {
		s.printf("  %v\n", err)
	}
}

// backing names what a VMA maps, from its CRIU status bits.
func (s *shower) backing(status uint32, shmid, pgoff uint64) string {
	switch {
	case status&(vmaFilePriv|vmaFileShared) != 0:
		name := s.fileName(uint32(shmid))
		if pgoff != 0 {
			name += fmt.Sprintf(" +%#x", pgoff)
		}
		return name
	case status&(1<<10) != 0: // with 1<<8 too, as CRIU marks it
		return fmt.Sprintf("sysv shm %d", shmid)
	case status&(1<<8) != 0:
		return fmt.Sprintf("shmem %#x", shmid)
	case status&(1<<1) != 0:
		return "[stack]"
	case status&vmaAreaVsys != 0:
		return "[vsyscall]"
	case status&(1<<3) != 0:
		return "[vdso]"
	case status&(1<<12) != 0:
		return "[vvar]"
	case status&(1<<5) != 0:
		return "[heap]"
	case status&(1<<13) != 0:
		return "[aio]"
	}
	return "anon"
}

func (s *shower) fileName(id uint32) string {
	f, ok := s.files[id]
	if !ok {
		return fmt.Sprintf("file %d (not in %s)", id, FilesFile)
	}
	return describeFile(f)
}

// describeFile says what an open file is, like crit x fds.
func describeFile(f *fdinfo.FileEntry) string {
	switch {
	case f.GetReg() != nil:
		return f.GetReg().GetName()
	case f.GetPipe() != nil:
		return fmt.Sprintf("pipe[%d]", f.GetPipe().GetPipeId())
	case f.GetFifo() != nil:
		return fmt.Sprintf("fifo[%d]", f.GetFifo().GetPipeId())
	case f.GetTty() != nil:
		side := "slave"
		if f.GetTty().GetTtyInfoId()&1 != 0 {
			side = "master"
		}
		return fmt.Sprintf("pty[%d %s]", f.GetTty().GetTtyInfoId()>>1, side)
	case f.GetUsk() != nil:
		u := f.GetUsk()
		return fmt.Sprintf("unix[%d peer %d %q]", u.GetIno(), u.GetPeer(), u.GetName())
	case f.GetIsk() != nil:
		i := f.GetIsk()
		return fmt.Sprintf("inet[family %d type %d %d->%d]", i.GetFamily(), i.GetType(), i.GetSrcPort(), i.GetDstPort())
	case f.GetEfd() != nil:
		return fmt.Sprintf("eventfd[count %d]", f.GetEfd().GetCounter())
	case f.GetMemfd() != nil:
		return fmt.Sprintf("memfd[inode %d]", f.GetMemfd().GetInodeId())
	case f.GetSgfd() != nil:
		return fmt.Sprintf("signalfd[mask %#x]", f.GetSgfd().GetSigmask())
	case f.GetTfd() != nil:
		t := f.GetTfd()
		return fmt.Sprintf("timerfd[clock %d left %d.%09d every %d.%09d]", t.GetClockid(), t.GetVsec(), t.GetVnsec(), t.GetIsec(), t.GetInsec())
	case f.GetIfy() != nil:
		return fmt.Sprintf("inotify[%d watches]", len(f.GetIfy().GetWd()))
	}
	return fmt.Sprintf("%s.%d", f.GetType(), f.GetId())
}

func (s *shower) fds(pid uint32, core *criu_core.CoreEntry) {
	filesID, fsOK := uint32(0), false
	if ids, err := ReadOne[criu_core.TaskKobjIdsEntry](s.d, Ids, IdsFile(pid)); err == nil {
		filesID, fsOK = ids.GetFilesId(), true
	} else if core.GetIds() != nil {
		filesID, fsOK = core.GetIds().GetFilesId(), true
	} else {
		s.problem("  ", IdsFile(pid), err)
	}
	if fsOK {
		fds, err := ReadAll[fdinfo.FdinfoEntry](s.d, Fdinfo, FdinfoFile(filesID))
		if err != nil {
			s.problem("  ", FdinfoFile(filesID), err)
		} else {
			s.printf("  fds (%s):\n", FdinfoFile(filesID))
			for _, fd := range fds {
				name := "?"
				if f, ok := s.files[fd.GetId()]; ok {
					name = describeFile(f)
				}
				if q, ok := s.mqueues[fd.GetId()]; ok {
					name = fmt.Sprintf("mqueue /%s", q.GetName())
				}
				s.printf("    %d\t%s\t%s\n", fd.GetFd(), fd.GetType(), name)
			}
		}
	}
	if f, err := ReadOne[fsimg.FsEntry](s.d, Fs, FsFile(pid)); err != nil {
		s.problem("  ", FsFile(pid), err)
	} else {
		s.printf("  cwd %s, root %s, umask %#o\n", s.fileName(f.GetCwdId()), s.fileName(f.GetRootId()), f.GetUmask())
	}
}

func (s *shower) signals(pid uint32, core *criu_core.CoreEntry) {
	sas := core.GetTc().GetSigactions()
	if len(sas) == 0 && s.d.Exists(SigactsFile(pid)) { // CRIU before sigactions moved into core
		old, err := ReadAll[criu_sa.SaEntry](s.d, Sigacts, SigactsFile(pid))
		if err != nil {
			s.problem("  ", SigactsFile(pid), err)
		}
		sas = old
	}
	var lines []string
	for i, sa := range sas {
		sig := SigactionSignal(i)
		var what string
		switch h := sa.GetSigaction(); h {
		case 0:
			continue
		case 1:
			what = "ignored"
		default:
			what = fmt.Sprintf("handler %#x flags %#x mask %#x", h, sa.GetFlags(), sa.GetMask())
		}
		lines = append(lines, fmt.Sprintf("    %-9s %s\n", signalName(sig), what))
	}
	if len(lines) == 0 {
		s.printf("  signals: all default\n")
		return
	}
	s.printf("  signals (not default):\n%s", strings.Join(lines, ""))
}

func signalName(sig int) string {
	if n := unix.SignalName(unix.Signal(sig)); n != "" {
		return n
	}
	if sig >= 34 {
		return fmt.Sprintf("SIGRTMIN+%d", sig-34)
	}
	return fmt.Sprintf("SIG%d", sig)
}

func (s *shower) stats() {
	s.printf("\n")
	if st, err := s.d.ReadStats(StatsDumpFile); err != nil {
		s.problem("", StatsDumpFile, err)
	} else if dm := st.GetDump(); dm != nil {
		s.printf("dump: freezing %dus, frozen %dus, memdump %dus, memwrite %dus; pages scanned %d, skipped (parent) %d, written %d, lazy %d\n",
			dm.GetFreezingTime(), dm.GetFrozenTime(), dm.GetMemdumpTime(), dm.GetMemwriteTime(),
			dm.GetPagesScanned(), dm.GetPagesSkippedParent(), dm.GetPagesWritten(), dm.GetPagesLazy())
	}
	if !s.d.Exists(StatsRestoreFile) {
		return
	}
	if st, err := s.d.ReadStats(StatsRestoreFile); err != nil {
		s.problem("", StatsRestoreFile, err)
	} else if r := st.GetRestore(); r != nil {
		s.printf("restore: forking %dus, restore %dus; pages compared %d, skipped (cow) %d, restored %d\n",
			r.GetForkingTime(), r.GetRestoreTime(), r.GetPagesCompared(), r.GetPagesSkippedCow(), r.GetPagesRestored())
	}
}

func protString(prot, flags uint32) string {
	b := []byte("---p")
	if prot&1 != 0 {
		b[0] = 'r'
	}
	if prot&2 != 0 {
		b[1] = 'w'
	}
	if prot&4 != 0 {
		b[2] = 'x'
	}
	if flags&mapShared != 0 {
		b[3] = 's'
	}
	return string(b)
}

func sizeString(n uint64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dG", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dM", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%dK", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}
