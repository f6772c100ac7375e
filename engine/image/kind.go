package image

import (
	"fmt"

	"github.com/checkpoint-restore/go-criu/v7/magic"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Kind is one type of CRIU image: it fixes the header magic and which
// protobuf messages the entries may hold. Kinds are constants; their
// properties come from kindInfo so that no table can be changed at run time.
type Kind int

// The kinds gocr reads or writes. The comment gives CRIU's file name.
const (
	Inventory    Kind = iota + 1 // inventory.img
	Stats                        // stats-dump, stats-restore
	Pstree                       // pstree.img
	Core                         // core-<tid>.img: regs, sigactions, rlimits, creds (CRIU ≥ 1.x keeps them here)
	Ids                          // ids-<pid>.img
	Mm                           // mm-<pid>.img
	Creds                        // creds-<pid>.img (older CRIU; newer keeps creds in core)
	Fs                           // fs-<pid>.img
	Pagemap                      // pagemap-<pid>.img, pagemap-shmem-<shmid>.img
	Files                        // files.img: every open file, as FileEntry with a oneof-like field per type
	Fdinfo                       // fdinfo-<files_id>.img
	RegFiles                     // reg-files.img (CRIU < 3.15; newer uses files.img)
	Sigacts                      // sigacts-<pid>.img (old CRIU; newer keeps them in core)
	Rlimit                       // rlimit-<pid>.img (old CRIU; newer keeps them in core)
	Itimers                      // itimers-<pid>.img (old CRIU; newer keeps them in core)
	PosixTimers                  // posix-timers-<pid>.img (old CRIU)
	PipesData                    // pipes-data.img: entry + pipe contents
	FifoData                     // fifo-data.img: entry + fifo contents
	SkQueues                     // sk-queues.img: entry + queued packet
	TCPStream                    // tcp-stream-<ino hex>.img: entry + in queue + out queue
	GhostFile                    // ghost-file-<id hex>.img: entry + contents (or chunks)
	RemapFpath                   // remap-fpath.img
	Mnts                         // mountpoints-<ns id>.img
	Utsns                        // utsns-<ns id>.img
	IpcVar                       // ipcns-var-<ns id>.img
	IpcnsShm                     // ipcns-shm-<ns id>.img: entry + segment bytes
	IpcnsSem                     // ipcns-sem-<ns id>.img: entry + semaphore values
	IpcnsMsg                     // ipcns-msg-<ns id>.img: entry + messages
	Userns                       // userns-<ns id>.img
	Timens                       // timens-<ns id>.img
	Pidns                        // pidns-<ns id>.img
	Netns                        // netns-<ns id>.img
	Netdev                       // netdev-<ns id>.img
	TtyInfo                      // tty-info.img
	TtyData                      // tty-data.img
	FileLocks                    // filelocks.img
	EventpollTfd                 // eventpoll-tfd.img (old CRIU)
	InotifyWd                    // inotify-wd.img (old CRIU)
	FanotifyMark                 // fanotify-mark.img (old CRIU)
	Cgroup                       // cgroup.img
	Seccomp                      // seccomp.img
	Cpuinfo                      // cpuinfo.img
	MemfdInode                   // memfd.img
	BpfmapData                   // bpfmap-data.img: entry + keys + values
	Apparmor                     // apparmor.img
	IrmapCache                   // irmap-cache
	// gocr's own kinds, for state CRIU's format has no entry for; their
	// magics are gocr's (gocrMagics) and their messages engine/image/gocrpb.
	GocrMqueue      // gocr-mqueue-<ipc ns id>.img: POSIX message queues, each + its messages
	GocrMqueueFiles // gocr-mqueue-files.img: open message queues
	GocrPidfds      // gocr-pidfds.img: open pidfds
	lastKind
)

// header says what precedes an image's own magic.
type header int

const (
	headCommon  header = iota // IMG_COMMON, then the image magic
	headService               // IMG_SERVICE, then the image magic
	headBare                  // the image magic alone (inventory)
)

// info describes a kind: the magic's name in go-criu's magic package, the
// header it takes and the message types its entries may hold, in order of
// appearance where that matters (pagemap head first, ghost file first).
type info struct {
	name  string
	magic string
	head  header
	types []protoreflect.FullName
}

func kindInfo(k Kind) (info, bool) {
	one := func(name, magic string, t protoreflect.FullName) info {
		return info{name: name, magic: magic, types: []protoreflect.FullName{t}}
	}
	switch k {
	case Inventory:
		i := one("inventory", "INVENTORY", "inventory_entry")
		i.head = headBare
		return i, true
	case Stats:
		i := one("stats", "STATS", "stats_entry")
		i.head = headService
		return i, true
	case IrmapCache:
		i := one("irmap-cache", "IRMAP_CACHE", "irmap_cache_entry")
		i.head = headService
		return i, true
	case Pstree:
		return one("pstree", "PSTREE", "pstree_entry"), true
	case Core:
		return one("core", "CORE", "core_entry"), true
	case Ids:
		return one("ids", "IDS", "task_kobj_ids_entry"), true
	case Mm:
		return one("mm", "MM", "mm_entry"), true
	case Creds:
		return one("creds", "CREDS", "creds_entry"), true
	case Fs:
		return one("fs", "FS", "fs_entry"), true
	case Pagemap:
		i := one("pagemap", "PAGEMAP", "pagemap_head")
		i.types = append(i.types, "pagemap_entry")
		return i, true
	case Files:
		return one("files", "FILES", "file_entry"), true
	case Fdinfo:
		return one("fdinfo", "FDINFO", "fdinfo_entry"), true
	case RegFiles:
		return one("reg-files", "REG_FILES", "reg_file_entry"), true
	case Sigacts:
		return one("sigacts", "SIGACT", "sa_entry"), true
	case Rlimit:
		return one("rlimit", "RLIMIT", "rlimit_entry"), true
	case Itimers:
		return one("itimers", "ITIMERS", "itimer_entry"), true
	case PosixTimers:
		return one("posix-timers", "POSIX_TIMERS", "posix_timer_entry"), true
	case PipesData:
		return one("pipes-data", "PIPES_DATA", "pipe_data_entry"), true
	case FifoData:
		return one("fifo-data", "FIFO_DATA", "pipe_data_entry"), true
	case SkQueues:
		return one("sk-queues", "SK_QUEUES", "sk_packet_entry"), true
	case TCPStream:
		return one("tcp-stream", "TCP_STREAM", "tcp_stream_entry"), true
	case GhostFile:
		i := one("ghost-file", "GHOST_FILE", "ghost_file_entry")
		i.types = append(i.types, "ghost_chunk_entry")
		return i, true
	case RemapFpath:
		return one("remap-fpath", "REMAP_FPATH", "remap_file_path_entry"), true
	case Mnts:
		return one("mountpoints", "MNTS", "mnt_entry"), true
	case Utsns:
		return one("utsns", "UTSNS", "utsns_entry"), true
	case IpcVar:
		return one("ipcns-var", "IPC_VAR", "ipc_var_entry"), true
	case IpcnsShm:
		return one("ipcns-shm", "IPCNS_SHM", "ipc_shm_entry"), true
	case IpcnsSem:
		return one("ipcns-sem", "IPCNS_SEM", "ipc_sem_entry"), true
	case IpcnsMsg:
		i := one("ipcns-msg", "IPCNS_MSG", "ipc_msg_entry")
		i.types = append(i.types, "ipc_msg")
		return i, true
	case Userns:
		return one("userns", "USERNS", "userns_entry"), true
	case Timens:
		return one("timens", "TIMENS", "timens_entry"), true
	case Pidns:
		return one("pidns", "PIDNS", "pidns_entry"), true
	case Netns:
		return one("netns", "NETNS", "netns_entry"), true
	case Netdev:
		return one("netdev", "NETDEV", "net_device_entry"), true
	case TtyInfo:
		return one("tty-info", "TTY_INFO", "tty_info_entry"), true
	case TtyData:
		return one("tty-data", "TTY_DATA", "tty_data_entry"), true
	case FileLocks:
		return one("filelocks", "FILE_LOCKS", "file_lock_entry"), true
	case EventpollTfd:
		return one("eventpoll-tfd", "EVENTPOLL_TFD", "eventpoll_tfd_entry"), true
	case InotifyWd:
		return one("inotify-wd", "INOTIFY_WD", "inotify_wd_entry"), true
	case FanotifyMark:
		return one("fanotify-mark", "FANOTIFY_MARK", "fanotify_mark_entry"), true
	case Cgroup:
		return one("cgroup", "CGROUP", "cgroup_entry"), true
	case Seccomp:
		return one("seccomp", "SECCOMP", "seccomp_entry"), true
	case Cpuinfo:
		return one("cpuinfo", "CPUINFO", "cpuinfo_entry"), true
	case MemfdInode:
		return one("memfd", "MEMFD_INODE", "memfd_inode_entry"), true
	case BpfmapData:
		return one("bpfmap-data", "BPFMAP_DATA", "bpfmap_data_entry"), true
	case Apparmor:
		return one("apparmor", "APPARMOR", "apparmor_entry"), true
	case GocrMqueue:
		i := one("gocr-mqueue", "GOCR_MQUEUE", "gocr.mqueue_entry")
		i.types = append(i.types, "gocr.mqueue_msg")
		return i, true
	case GocrMqueueFiles:
		return one("gocr-mqueue-files", "GOCR_MQUEUE_FILES", "gocr.mqueue_file_entry"), true
	case GocrPidfds:
		return one("gocr-pidfds", "GOCR_PIDFDS", "gocr.pidfd_entry"), true
	}
	return info{}, false
}

// String is the kind's name as CRIU's file names spell it.
func (k Kind) String() string {
	if i, ok := kindInfo(k); ok {
		return i.name
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Kinds lists every kind, for tools that walk a directory.
func Kinds() []Kind {
	ks := make([]Kind, 0, int(lastKind)-1)
	for k := Inventory; k < lastKind; k++ {
		ks = append(ks, k)
	}
	return ks
}

// gocrMagics are the magics of gocr's own kinds, kept apart from CRIU's
// (crit and CRIU refuse a file with one, rather than misread it). They
// follow CRIU's habit of numbers nobody else uses: "GOCR" and "GOCQ" in
// ASCII, little-endian.
var gocrMagics = map[string]uint32{
	"GOCR_MQUEUE":       0x52434f47,
	"GOCR_MQUEUE_FILES": 0x51434f47,
	"GOCR_PIDFDS":       0x50434f47, // "GOCP"
}

// loadMagics is go-criu's magic table with gocr's own added.
func loadMagics() magic.MagicMap {
	m := magic.LoadMagic()
	for name, v := range gocrMagics {
		m.ByName[name] = uint64(v)
		m.ByValue[uint64(v)] = name
	}
	return m
}

// headerWords resolves a kind's header to the 32-bit words written at the
// start of the file, using go-criu's magic table.
func headerWords(k Kind, m magic.MagicMap) ([]uint32, error) {
	i, ok := kindInfo(k)
	if !ok {
		return nil, fmt.Errorf("unknown image kind %d", int(k))
	}
	lookup := func(name string) (uint32, error) {
		v, ok := m.ByName[name]
		if !ok || v > 0xffffffff {
			return 0, fmt.Errorf("magic %s missing from go-criu's magic table", name)
		}
		return uint32(v), nil
	}
	own, err := lookup(i.magic)
	if err != nil {
		return nil, err
	}
	switch i.head {
	case headBare:
		return []uint32{own}, nil
	case headService:
		s, err := lookup("IMG_SERVICE")
		return []uint32{s, own}, err
	default:
		c, err := lookup("IMG_COMMON")
		return []uint32{c, own}, err
	}
}

// accepts reports whether entries of kind k may hold message m.
func (i info) accepts(m proto.Message) bool {
	name := m.ProtoReflect().Descriptor().FullName()
	for _, t := range i.types {
		if t == name {
			return true
		}
	}
	return false
}
