package image

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	core_x86 "github.com/checkpoint-restore/go-criu/v7/crit/images/core-x86"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/creds"
	criu_core "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-core"
	criu_sa "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-sa"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fh"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fown"
	fsimg "github.com/checkpoint-restore/go-criu/v7/crit/images/fs"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fsnotify"
	ghost_file "github.com/checkpoint-restore/go-criu/v7/crit/images/ghost-file"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/inventory"
	ipc_desc "github.com/checkpoint-restore/go-criu/v7/crit/images/ipc-desc"
	ipc_msg "github.com/checkpoint-restore/go-criu/v7/crit/images/ipc-msg"
	ipc_sem "github.com/checkpoint-restore/go-criu/v7/crit/images/ipc-sem"
	ipc_shm "github.com/checkpoint-restore/go-criu/v7/crit/images/ipc-shm"
	ipc_var "github.com/checkpoint-restore/go-criu/v7/crit/images/ipc-var"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/memfd"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/mm"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pipe"
	pipe_data "github.com/checkpoint-restore/go-criu/v7/crit/images/pipe-data"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pstree"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/regfile"
	remap "github.com/checkpoint-restore/go-criu/v7/crit/images/remap-file-path"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/signalfd"
	sk_opts "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-opts"
	sk_packet "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-packet"
	sk_unix "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-unix"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/stats"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/timens"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/timerfd"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/tty"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/vma"
	"google.golang.org/protobuf/proto"
)

// The sample tree: task 100 (threads 100, 101) with child 102.
const (
	samplePid    = 100
	sampleThread = 101
	sampleChild  = 102
	sampleComm   = "sleeper"
	sampleHeap   = 0x5555_5560_0000
	pipeText     = "hello through a pipe"
	skText       = "a datagram in flight"
	skName       = "/run/sample.sock"
	ghostText    = "contents of a deleted file"
	// A sparse ghost: two runs of data in a file of ghostSparseSize.
	ghostChunk1, ghostChunk2 = "first run of data", "second run, past a hole"
	ghostChunk2At            = 1 << 20
	ghostSparseSize          = 3 << 20
	sampleIpcNS              = 4 // sampleIDs().IpcNsId
	sampleTimeNS             = 8 // a time namespace of the tree's children
	sampleShmID              = 32769
	shmText                  = "a SysV segment's bytes"
)

// The sample ipc namespace's SysV objects: two of each kind, so a decoder
// must find where one's raw data ends and the next entry starts.
var (
	sampleShm  = []string{shmText, "second segment!"} // sizes 22 and 15: padded to 4
	sampleSems = [][]uint16{{1, 2, 3}, {7}}           // padded to 8
	sampleMsgs = [][]string{{"first", "", "third message"}, {"x"}}
)

func ipcDesc(id uint32) *ipc_desc.IpcDescEntry {
	return &ipc_desc.IpcDescEntry{Key: u32(0x1000 + id), Uid: u32(18943), Gid: u32(58467), Cuid: u32(18943), Cgid: u32(58467),
		Mode: u32(0o640), Id: u32(id)}
}

// writeSampleIPC writes the sample ipc namespace's images.
func writeSampleIPC(t testing.TB, d *Dir) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(d.WriteOne(IpcVar, IpcVarFile(sampleIpcNS), &ipc_var.IpcVarEntry{SemCtls: []uint32{32000, 1024000000, 500, 32000},
		MsgCtlmax: u32(8192), MsgCtlmnb: u32(16384), MsgCtlmni: u32(32000), AutoMsgmni: u32(0), ShmCtlmax: u64(1 << 40),
		ShmCtlall: u64(1 << 40), ShmCtlmni: u32(4096), ShmRmidForced: u32(0), MqQueuesMax: u32(256), MqMsgMax: u32(10),
		MqMsgsizeMax: u32(8192), ShmNextId: u32(7)}))
	w, err := d.Writer(IpcnsShm, IpcnsShmFile(sampleIpcNS))
	must(err)
	for i, text := range sampleShm {
		e := &ipc_shm.IpcShmEntry{Desc: ipcDesc(sampleShmID + uint32(i)), Size: u64(uint64(len(text)))}
		must(w.WritePayload(e, strings.NewReader(text)))
	}
	must(w.Close())
	w, err = d.Writer(IpcnsSem, IpcnsSemFile(sampleIpcNS))
	must(err)
	for i, vals := range sampleSems {
		b := make([]byte, 2*len(vals))
		for j, v := range vals {
			b[2*j], b[2*j+1] = byte(v), byte(v>>8)
		}
		must(w.WritePayload(&ipc_sem.IpcSemEntry{Desc: ipcDesc(uint32(i)), Nsems: u32(uint32(len(vals)))}, bytes.NewReader(b)))
	}
	must(w.Close())
	w, err = d.Writer(IpcnsMsg, IpcnsMsgFile(sampleIpcNS))
	must(err)
	for i, msgs := range sampleMsgs {
		must(w.Write(&ipc_msg.IpcMsgEntry{Desc: ipcDesc(uint32(i)), Qbytes: u32(16384), Qnum: u32(uint32(len(msgs)))}))
		for j, m := range msgs {
			must(w.WritePayload(&ipc_msg.IpcMsg{Mtype: u64(uint64(j + 1)), Msize: u32(uint32(len(m)))}, strings.NewReader(m)))
		}
	}
	must(w.Close())
}

// File ids in files.img.
const (
	idExe = 1 + iota
	idRoot
	idNull
	idPipeR
	idPipeW
	idGhost     // deleted with no name left: ghost 2
	idUnlinked  // unlinked with another link left: remapped to idLinkRemap
	idLinkRemap // the link the dump made for it
	idSignalfd
	idTimerfd
	idInotify
	idMemfd
	idPtmxPath // where the pty master was opened (its regf_id)
	idPtmx
	idUsk
)

// The sample memfd: its inode in memfd.img and its contents, one page in
// pagemap-shmem-<shmid>.img.
const (
	memfdShmid = 4711
	memfdName  = "sample-memfd"
)

// samplePty is the index of the sample's pty, whose master fd 5 holds.
const samplePty = 3

func u32(v uint32) *uint32 { return proto.Uint32(v) }
func u64(v uint64) *uint64 { return proto.Uint64(v) }

func sampleIDs() *criu_core.TaskKobjIdsEntry {
	return &criu_core.TaskKobjIdsEntry{VmId: u32(1), FilesId: u32(7), FsId: u32(1), SighandId: u32(1),
		PidNsId: u32(2), NetNsId: u32(3), IpcNsId: u32(4), UtsNsId: u32(5), MntNsId: u32(6)}
}

func sampleRegs(ip uint64) *core_x86.ThreadInfoX86 {
	z := func() *uint64 { return u64(0) }
	regs := &core_x86.UserX86RegsEntry{
		R15: z(), R14: z(), R13: z(), R12: z(), Bp: z(), Bx: z(), R11: z(), R10: z(), R9: z(), R8: z(),
		Ax: u64(0xfffffffffffffe00), Cx: z(), Dx: z(), Si: z(), Di: z(), OrigAx: u64(35), Ip: u64(ip),
		Cs: u64(0x33), Flags: u64(0x246), Sp: u64(0x7ffd_0000_1000), Ss: u64(0x2b), FsBase: u64(0x7f00_0000_0740),
		GsBase: z(), Ds: z(), Es: z(), Fs: z(), Gs: z(), Mode: core_x86.UserX86RegsMode_NATIVE.Enum(),
	}
	words := func(n int, seed uint32) []uint32 {
		w := make([]uint32, n)
		for i := range w {
			w[i] = seed + uint32(i)
		}
		return w
	}
	fp := &core_x86.UserX86FpregsEntry{
		Cwd: u32(0x37f), Swd: u32(0), Twd: u32(0), Fop: u32(0), Rip: u64(0), Rdp: u64(0),
		Mxcsr: u32(0x1f80), MxcsrMask: u32(0xffff), StSpace: words(32, 0), XmmSpace: words(64, 1000),
		Padding: make([]uint32, 24),
		Xsave:   &core_x86.UserX86XsaveEntry{XstateBv: u64(7), YmmhSpace: words(64, 5000)},
	}
	return &core_x86.ThreadInfoX86{ClearTidAddr: u64(0x7f00_0000_0a10), Gpregs: regs, Fpregs: fp}
}

func sampleSigactions() []*criu_sa.SaEntry {
	sas := make([]*criu_sa.SaEntry, NumSigactions)
	for i := range sas {
		sas[i] = &criu_sa.SaEntry{Sigaction: u64(0), Flags: u64(0), Restorer: u64(0), Mask: u64(0)}
	}
	i, _ := SigactionIndex(10) // SIGUSR1: a handler
	sas[i] = &criu_sa.SaEntry{Sigaction: u64(0x401234), Flags: u64(0x04000004), Restorer: u64(0x7f00_0000_1000), Mask: u64(0)}
	i, _ = SigactionIndex(13) // SIGPIPE: ignored
	sas[i].Sigaction = u64(1)
	return sas
}

func sampleCore(tid uint32, main bool) *criu_core.CoreEntry {
	c := &criu_core.CoreEntry{
		Mtype:      criu_core.CoreEntry_X86_64.Enum(),
		ThreadInfo: sampleRegs(0x401000 + uint64(tid)),
		ThreadCore: &criu_core.ThreadCoreEntry{FutexRla: u64(0), FutexRlaLen: u32(0), BlkSigset: u64(0),
			Creds: sampleCreds(), Comm: proto.String(sampleComm)},
	}
	if main {
		c.Tc = &criu_core.TaskCoreEntry{TaskState: u32(1), ExitCode: u32(0), Personality: u32(0), Flags: u32(0x400000),
			BlkSigset: u64(1 << 9), Comm: proto.String(sampleComm), Sigactions: sampleSigactions()}
		c.Ids = sampleIDs()
	}
	return c
}

func sampleCreds() *creds.CredsEntry {
	return &creds.CredsEntry{Uid: u32(0), Gid: u32(0), Euid: u32(0), Egid: u32(0), Suid: u32(0), Sgid: u32(0),
		Fsuid: u32(0), Fsgid: u32(0), CapInh: []uint32{0, 0}, CapPrm: []uint32{0xffffffff, 0x1ff},
		CapEff: []uint32{0xffffffff, 0x1ff}, CapBnd: []uint32{0xffffffff, 0x1ff}, Secbits: u32(0)}
}

func vmaEntry(start, end uint64, prot, flags, status uint32, shmid uint64) *vma.VmaEntry {
	return &vma.VmaEntry{Start: u64(start), End: u64(end), Pgoff: u64(0), Shmid: u64(shmid), Prot: u32(prot),
		Flags: u32(flags), Status: u32(status), Fd: proto.Int64(-1)}
}

func sampleMM() *mm.MmEntry {
	return &mm.MmEntry{
		MmStartCode: u64(0x400000), MmEndCode: u64(0x401000), MmStartData: u64(0x600000), MmEndData: u64(0x601000),
		MmStartStack: u64(0x7ffd_0000_2000), MmStartBrk: u64(sampleHeap), MmBrk: u64(sampleHeap + 0x4000),
		MmArgStart: u64(0x7ffd_0000_2100), MmArgEnd: u64(0x7ffd_0000_2200), MmEnvStart: u64(0x7ffd_0000_2200),
		MmEnvEnd: u64(0x7ffd_0000_2f00), ExeFileId: u32(idExe), MmSavedAuxv: []uint64{6, 4096, 0, 0},
		Vmas: []*vma.VmaEntry{
			vmaEntry(0x400000, 0x401000, 5, 2, 1|1<<6, idExe),
			vmaEntry(sampleHeap, sampleHeap+0x4000, 3, 0x22, 1|1<<5|1<<9, 0),
			vmaEntry(0x7ffd_0000_0000, 0x7ffd_0000_3000, 3, 0x122, 1|1<<1|1<<9, 0),
			vmaEntry(VsyscallStart, VsyscallEnd, 4, 0x22, 1<<2, 0),
		},
	}
}

func reg(id uint32, name string, flags uint32) *fdinfo.FileEntry {
	return &fdinfo.FileEntry{Type: fdinfo.FdTypes_REG.Enum(), Id: u32(id), Reg: &regfile.RegFileEntry{
		Id: u32(id), Flags: u32(flags), Pos: u64(0), Name: proto.String(name),
		Fown: &fown.FownEntry{Uid: u32(0), Euid: u32(0), Signum: u32(0), PidType: u32(0), Pid: u32(0)}}}
}

func pipeFile(id, flags uint32) *fdinfo.FileEntry {
	return &fdinfo.FileEntry{Type: fdinfo.FdTypes_PIPE.Enum(), Id: u32(id), Pipe: &pipe.PipeEntry{
		Id: u32(id), PipeId: u32(4242), Flags: u32(flags),
		Fown: &fown.FownEntry{Uid: u32(0), Euid: u32(0), Signum: u32(0), PidType: u32(0), Pid: u32(0)}}}
}

func owner() *fown.FownEntry {
	return &fown.FownEntry{Uid: u32(0), Euid: u32(0), Signum: u32(0), PidType: u32(0), Pid: u32(0)}
}

// fdKindFiles are one file of each kind beyond regular files and pipes
// that gocr dumps: signalfd, timerfd, inotify and memfd.
func fdKindFiles() []*fdinfo.FileEntry {
	return []*fdinfo.FileEntry{
		{Type: fdinfo.FdTypes_SIGNALFD.Enum(), Id: u32(idSignalfd), Sgfd: &signalfd.SignalfdEntry{
			Id: u32(idSignalfd), Flags: u32(0o4000), Fown: owner(), Sigmask: u64(1<<9 | 1<<33)}},
		{Type: fdinfo.FdTypes_TIMERFD.Enum(), Id: u32(idTimerfd), Tfd: &timerfd.TimerfdEntry{
			Id: u32(idTimerfd), Flags: u32(2), Fown: owner(), Clockid: u32(1), Ticks: u64(3), SettimeFlags: u32(1),
			Vsec: u64(5), Vnsec: u64(250), Isec: u64(0), Insec: u64(50_000_000)}},
		{Type: fdinfo.FdTypes_INOTIFY.Enum(), Id: u32(idInotify), Ify: &fsnotify.InotifyFileEntry{
			Id: u32(idInotify), Flags: u32(0o4000), Fown: owner(), Wd: []*fsnotify.InotifyWdEntry{{
				Id: u32(idInotify), IIno: u64(0x3c4a3), Mask: u32(0x100), IgnoredMask: u32(0), SDev: u32(0xfe00000), Wd: u32(3),
				FHandle: &fh.FhEntry{Bytes: u32(8), Type: u32(1), Handle: make([]uint64, 16), Path: proto.String("/srv/watched")},
			}}}},
		{Type: fdinfo.FdTypes_MEMFD.Enum(), Id: u32(idMemfd), Memfd: &memfd.MemfdFileEntry{
			Id: u32(idMemfd), Flags: u32(2), Pos: u64(77), Fown: owner(), InodeId: u32(1)}},
	}
}

// ptyMaster is the master of pty samplePty as CRIU writes it: a tty file
// naming the master's tty info (2N+1) and the path it was opened at.
func ptyMaster() *fdinfo.FileEntry {
	return &fdinfo.FileEntry{Type: fdinfo.FdTypes_TTY.Enum(), Id: u32(idPtmx), Tty: &tty.TtyFileEntry{
		Id: u32(idPtmx), TtyInfoId: u32(samplePty<<1 | 1), Flags: u32(2), RegfId: u32(idPtmxPath),
		Fown: &fown.FownEntry{Uid: u32(0), Euid: u32(0), Signum: u32(0), PidType: u32(0), Pid: u32(0)}}}
}

// ptyInfo is the state of pty samplePty: raw mode with VMIN 4, 41x133,
// packet mode, the terminal of session sampleChild.
func ptyInfo() *tty.TtyInfoEntry {
	cc := make([]uint32, 19)
	cc[6] = 4 // VMIN
	termios := func(lflag uint32) *tty.TermiosEntry {
		return &tty.TermiosEntry{CIflag: u32(0), COflag: u32(0), CCflag: u32(0o277), CLflag: u32(lflag), CLine: u32(0),
			CIspeed: u32(0), COspeed: u32(0), CCc: cc}
	}
	return &tty.TtyInfoEntry{Id: u32(samplePty<<1 | 1), Type: tty.TtyType_PTY.Enum(), Locked: proto.Bool(false),
		Exclusive: proto.Bool(false), PacketMode: proto.Bool(true), Sid: u32(sampleChild), Pgrp: u32(sampleChild),
		Rdev: u32(5<<8 | 2), Termios: termios(0o5060), TermiosLocked: termios(0),
		Winsize: &tty.WinsizeEntry{WsRow: u32(41), WsCol: u32(133), WsXpixel: u32(0), WsYpixel: u32(0)},
		Pty:     &tty.TtyPtyEntry{Index: u32(samplePty)}}
}

// unixSocket is a bound datagram socket, the kind of entry sk-queues.img
// refers to.
func unixSocket(id uint32) *fdinfo.FileEntry {
	zero := func() *uint32 { return u32(0) }
	return &fdinfo.FileEntry{Type: fdinfo.FdTypes_UNIXSK.Enum(), Id: u32(id), Usk: &sk_unix.UnixSkEntry{
		Id: u32(id), Ino: u32(4343), Type: u32(2), State: u32(7), Flags: u32(2), Uflags: zero(), Backlog: zero(),
		Peer: zero(), Name: []byte(skName + "\x00"),
		Fown: &fown.FownEntry{Uid: zero(), Euid: zero(), Signum: zero(), PidType: zero(), Pid: zero()},
		Opts: &sk_opts.SkOptsEntry{SoSndbuf: u32(212992), SoRcvbuf: u32(212992), SoSndTmoSec: u64(0), SoSndTmoUsec: u64(0),
			SoRcvTmoSec: u64(0), SoRcvTmoUsec: u64(0), SoPasscred: proto.Bool(true)},
		FilePerms: &sk_unix.FilePermsEntry{Mode: u32(0o140755), Uid: zero(), Gid: zero()},
	}}
}

// pageContent is what sample page n of the heap holds.
func pageContent(n int) []byte { return bytes.Repeat([]byte{byte('a' + n)}, PageSize) }

// writeSample writes a representative image set through the package API
// and returns the directory, still open.
func writeSample(t testing.TB, path string) *Dir {
	t.Helper()
	d, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	tree, err := d.Writer(Pstree, PstreeFile)
	must(err)
	must(tree.Write(&pstree.PstreeEntry{Pid: u32(samplePid), Ppid: u32(0), Pgid: u32(samplePid), Sid: u32(samplePid), Threads: []uint32{samplePid, sampleThread}}))
	must(tree.Write(&pstree.PstreeEntry{Pid: u32(sampleChild), Ppid: u32(samplePid), Pgid: u32(samplePid), Sid: u32(samplePid), Threads: []uint32{sampleChild}}))
	must(tree.Close())

	files, err := d.Writer(Files, FilesFile)
	must(err)
	for _, f := range []*fdinfo.FileEntry{
		reg(idExe, "/usr/bin/sleeper", 0), reg(idRoot, "/", 0o200000), reg(idNull, "/dev/null", 2),
		pipeFile(idPipeR, 0), pipeFile(idPipeW, 1),
		reg(idGhost, "/tmp/gone", 2), reg(idUnlinked, "/tmp/unlinked", 2), reg(idLinkRemap, "/tmp/link_remap.8", 0),
	} {
		must(files.Write(f))
	}
	for _, f := range append(fdKindFiles(), reg(idPtmxPath, "/dev/ptmx", 2), ptyMaster(), unixSocket(idUsk)) {
		must(files.Write(f))
	}
	must(files.Close())

	rm, err := d.Writer(RemapFpath, RemapFpathFile)
	must(err)
	must(rm.Write(&remap.RemapFilePathEntry{OrigId: u32(idGhost), RemapId: u32(2), RemapType: remap.RemapType_GHOST.Enum()}))
	must(rm.Write(&remap.RemapFilePathEntry{OrigId: u32(idUnlinked), RemapId: u32(idLinkRemap), RemapType: remap.RemapType_LINKED.Enum()}))
	must(rm.Close())

	fds, err := d.Writer(Fdinfo, FdinfoFile(sampleIDs().GetFilesId()))
	must(err)
	for _, fd := range []*fdinfo.FdinfoEntry{
		{Id: u32(idNull), Flags: u32(0), Type: fdinfo.FdTypes_REG.Enum(), Fd: u32(0)},
		{Id: u32(idPipeR), Flags: u32(0), Type: fdinfo.FdTypes_PIPE.Enum(), Fd: u32(3)},
		{Id: u32(idPipeW), Flags: u32(1), Type: fdinfo.FdTypes_PIPE.Enum(), Fd: u32(4)},
		{Id: u32(idSignalfd), Flags: u32(1), Type: fdinfo.FdTypes_SIGNALFD.Enum(), Fd: u32(5)},
		{Id: u32(idTimerfd), Flags: u32(0), Type: fdinfo.FdTypes_TIMERFD.Enum(), Fd: u32(6)},
		{Id: u32(idInotify), Flags: u32(0), Type: fdinfo.FdTypes_INOTIFY.Enum(), Fd: u32(7)},
		{Id: u32(idMemfd), Flags: u32(0), Type: fdinfo.FdTypes_MEMFD.Enum(), Fd: u32(8)},
		{Id: u32(idPtmx), Flags: u32(0), Type: fdinfo.FdTypes_TTY.Enum(), Fd: u32(9)},
		{Id: u32(idUsk), Flags: u32(0), Type: fdinfo.FdTypes_UNIXSK.Enum(), Fd: u32(10)},
	} {
		must(fds.Write(fd))
	}
	must(fds.Close())

	must(d.WriteOne(TtyInfo, TtyInfoFile, ptyInfo()))

	pd, err := d.Writer(PipesData, PipesDataFile)
	must(err)
	must(pd.WritePayload(&pipe_data.PipeDataEntry{PipeId: u32(4242), Bytes: u32(uint32(len(pipeText)))}, strings.NewReader(pipeText)))
	must(pd.Close())

	sq, err := d.Writer(SkQueues, SkQueuesFile)
	must(err)
	must(sq.WritePayload(&sk_packet.SkPacketEntry{IdFor: u32(idUsk), Length: u32(uint32(len(skText)))}, strings.NewReader(skText)))
	must(sq.WritePayload(&sk_packet.SkPacketEntry{IdFor: u32(idUsk), Length: u32(0)}, strings.NewReader("")))
	must(sq.Close())

	gf, err := d.Writer(GhostFile, GhostFileName(1))
	must(err)
	must(gf.WritePayload(&ghost_file.GhostFileEntry{Uid: u32(0), Gid: u32(0), Mode: u32(0o100644), Size: u64(uint64(len(ghostText)))}, strings.NewReader(ghostText)))
	must(gf.Close())
	gf, err = d.Writer(GhostFile, GhostFileName(2))
	must(err)
	must(gf.Write(&ghost_file.GhostFileEntry{Uid: u32(1000), Gid: u32(1000), Mode: u32(0o100600),
		Chunks: proto.Bool(true), Size: u64(ghostSparseSize)}))
	must(gf.WritePayload(&ghost_file.GhostChunkEntry{Off: u64(0), Len: u64(uint64(len(ghostChunk1)))}, strings.NewReader(ghostChunk1)))
	must(gf.WritePayload(&ghost_file.GhostChunkEntry{Off: u64(ghostChunk2At), Len: u64(uint64(len(ghostChunk2)))}, strings.NewReader(ghostChunk2)))
	must(gf.Close())

	for _, pid := range []uint32{samplePid, sampleChild} {
		ids := sampleIDs()
		must(d.WriteOne(Ids, IdsFile(pid), ids))
		must(d.WriteOne(Core, CoreFile(pid), sampleCore(pid, true)))
		m := sampleMM()
		if pid == sampleChild { // a SysV attachment, before the stack
			m.Vmas = slices.Insert(m.Vmas, 2, vmaEntry(0x7f00_0010_0000, 0x7f00_0010_1000, 1, 0x21, 1|1<<8|1<<10, sampleShmID))
		}
		must(d.WriteOne(Mm, MmFile(pid), m))
		must(d.WriteOne(Fs, FsFile(pid), &fsimg.FsEntry{CwdId: u32(idRoot), RootId: u32(idRoot), Umask: u32(0o22)}))
		must(d.WriteOne(Creds, CredsFile(pid), sampleCreds()))

		pw, err := d.PageWriter(pid)
		must(err)
		must(pw.AddBytes(0x400000, pageContent(9)))
		for n := 0; n < 3; n++ { // three adjacent pages: merged into one entry
			must(pw.AddBytes(sampleHeap+uint64(n)*PageSize, pageContent(n)))
		}
		must(pw.Add(0x7ffd_0000_1000, 2, bytes.NewReader(append(pageContent(5), pageContent(6)...))))
		must(pw.Close())
	}
	must(d.WriteOne(Core, CoreFile(sampleThread), sampleCore(sampleThread, false)))
	writeSampleIPC(t, d)
	// A time namespace's clocks inside at dump time, and the dumper's.
	clock := func(sec, nsec uint64) *timens.Timespec { return &timens.Timespec{TvSec: u64(sec), TvNsec: u64(nsec)} }
	must(d.WriteOne(Timens, TimensFile(sampleTimeNS), &timens.TimensEntry{Monotonic: clock(885296, 135818880), Boottime: clock(1749296, 5)}))
	must(d.WriteOne(Timens, GocrTimensRefFile, &timens.TimensEntry{Monotonic: clock(21296, 135818880), Boottime: clock(21296, 5)}))

	// The memfd last: the tasks' pages keep pages ids 1 and 2.
	must(d.WriteOne(MemfdInode, MemfdFile, &memfd.MemfdInodeEntry{Name: proto.String(memfdName), Uid: u32(1000), Gid: u32(1000),
		Size: u64(PageSize), Shmid: u32(memfdShmid), Seals: u32(0xb), InodeId: u64(1)}))
	mp, err := d.ShmemPageWriter(memfdShmid)
	must(err)
	must(mp.AddBytes(0, pageContent(7)))
	must(mp.Close())

	must(d.WriteDumpStats(&stats.DumpStatsEntry{FreezingTime: u32(11), FrozenTime: u32(2222), MemdumpTime: u32(333),
		MemwriteTime: u32(444), PagesScanned: u64(20), PagesSkippedParent: u64(0), PagesWritten: u64(13), PagesLazy: u64(0)}))
	must(d.WriteInventory(NewInventory(sampleIDs(), inventory.Lsmtype_NO_LSM)))
	return d
}
