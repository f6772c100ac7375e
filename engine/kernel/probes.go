package kernel

// probe is one entry of the feature table. fn reports whether the feature
// works and what it saw.
type probe struct {
	name     string
	since    string
	cost     string
	optional bool
	fn       func(*probeEnv) (bool, string)
}

// probes is the feature table, in the order `gocr check` prints it.
var probes = []probe{
	{"clone3-set-tid", "5.5", "restored tasks cannot get their original pids", false, probeClone3SetTid},
	{"checkpoint-restore", "3.18", "the mm layout (brk, arg/env, auxv, exe link) cannot be restored", false, probeCheckpointRestore},
	{"cap-checkpoint-restore", "5.9", "setting pids and the mm layout needs CAP_SYS_ADMIN instead", true, probeCapCheckpointRestore},
	{"cap-sys-resource", "2.2", "hard rlimits cannot be raised back; prlimit on other uids fails", true, probeCapSysResource},
	{"ptrace-peeksiginfo", "3.10", "pending signals cannot be dumped", false, probePeeksiginfo},
	{"ptrace-getsigmask", "3.11", "blocked signal masks cannot be dumped without injection", false, probeGetsigmask},
	{"ptrace-rseq-config", "5.13", "rseq registrations (glibc 2.35+) are not restored: sched_getcpu reads a stale cpu", true, probeRseqConfig},
	{"ptrace-suspend-seccomp", "4.3", "tasks in seccomp strict or filter mode cannot be dumped or restored: injected calls would be killed or filtered", true, probeSuspendSeccomp},
	{"ptrace-seccomp-filter", "4.4", "tasks with seccomp filters cannot be dumped: their filters cannot be read", true, probeSeccompGetFilter},
	{"ptrace-seccomp-metadata", "4.16", "seccomp filters come back without their SECCOMP_FILTER_FLAG_LOG", true, probeSeccompMetadata},
	{"process-vm-readv", "3.2", "memory is copied through /proc/PID/mem, slower", true, probeProcessVMReadv},
	{"fdinfo-mnt-id", "3.15", "files cannot be reopened on the right mount", false, probeFdinfoMntID},
	{"kcmp", "3.5", "files, fs and signal handlers shared between tasks go unnoticed", false, probeKcmp},
	{"memfd", "3.17", "memfd files and mappings cannot be restored", false, probeMemfd},
	{"timerfd-set-ticks", "3.17", "timerfds with expirations not yet read cannot be restored", true, probeTimerfdSetTicks},
	{"timer-restore-ids", "6.15", "POSIX timers get their ids back only by creating them in order with stand-ins for the gaps: ids above a bound are refused at dump", true, probeTimerRestoreIDs},
	{"eventfd-semaphore", "6.6", "an eventfd in semaphore mode (EFD_SEMAPHORE) is not told apart: it comes back as a plain counter", true, probeEventfdSemaphore},
	{"inotify-setnextwd", "4.16", "inotify watch descriptors are matched by adding and removing stand-in watches", true, probeInotifySetNextWd},
	{"map-files", "3.3", "mappings of deleted or unreachable files cannot be reopened", false, probeMapFiles},
	{"proc-task-children", "3.5", "the process tree is found by scanning all of /proc", true, probeTaskChildren},
	{"ns-last-pid", "3.3", "no pid fallback when clone3 set_tid is missing", true, probeNsLastPid},
	{"pagemap-scan", "6.7", "present pages are found by reading pagemap, not in one ioctl", true, probePagemapScan},
	{"soft-dirty", "3.11", "no pre-dump or incremental dump through soft-dirty bits", true, probeSoftDirty},
	{"userfaultfd", "4.3", "no lazy (post-copy) restore", true, probeUserfaultfd},
	{"uffd-wp", "5.7", "no write tracking through userfaultfd", true, probeUffdWP},
	{"uffd-wp-async", "6.7", "no incremental dumps where soft-dirty is missing", true, probeUffdWPAsync},
	{"mremap-multi-vma", "6.17", "restore maps a repeating layout of VMAs with a call per VMA, not a few per layout", true, probeMremapMultiVMA},
	{"vvar-vclock", "6.13", "none: [vvar_vclock] does not exist before 6.13", true, probeVvarVclock},
	{"time-ns", "5.6", "trees in time namespaces cannot be dumped or restored; monotonic clocks jump on migration", true, probeTimeNS},
	{"pidfd", "5.3", "pidfds cannot be restored", true, probePidfd},
	{"pidfs", "6.9", "pidfds of processes that died and were reaped cannot be told apart: refused", true, probePidfs},
	{"pidfd-getfd", "5.6", "unix sockets and ptys cannot be dumped (gocr reads their state through its copy of the fd)", true, probePidfdGetfd},
	{"unix-diag", "3.3", "unix sockets cannot be dumped: their peers, names and pending connections are unknown", true, probeUnixDiag},
	{"unix-peek-off", "3.4", "unix sockets with data queued cannot be dumped: the queue cannot be read without taking it", true, probeUnixPeekOff},
	{"open-tree", "5.2", "detached mounts cannot be used to rebuild the mount tree", true, probeOpenTree},
	{"move-mount-set-group", "5.15", "mount propagation peer groups cannot be rebuilt exactly", true, probeMoveMountSetGroup},
	{"clone-detached-mount", "6.15", "a filesystem mounted in two of the tree's mount namespaces comes back as two, and a peer group spanning them is refused", true, probeCloneDetached},
	{"mount-setattr", "5.12", "a detached mount's propagation cannot be set: peer groups cannot be rebuilt, mount flags go through a bind remount", true, probeMountSetattr},
	{"tcp-repair", "3.5", "established TCP connections cannot be dumped", true, probeTCPRepair},
	{"ipc-msg-copy", "3.8", "SysV message queues of the tree's ipc namespace cannot be read without emptying them: refused", true, probeIPCMsgCopy},
	{"ipc-next-id", "3.8", "SysV objects of the tree's ipc namespace cannot get their ids back on restore", true, probeIPCNextID},
}

// probeEnv carries what several probes share, so each underlying test
// (the traced child, the userfaultfd handshake) runs once.
type probeEnv struct {
	ptrace *ptraceResults
	uffd   *uffdResult
}
