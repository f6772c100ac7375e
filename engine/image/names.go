package image

import (
	"fmt"
	"strings"
)

// File names as CRIU ≥ 3.17 spells them (criu/image-desc.c): "%u" numbers
// are decimal, ghost files and tcp streams are hexadecimal, stats and
// irmap-cache have no ".img" suffix.
const (
	InventoryFile    = "inventory.img"
	PstreeFile       = "pstree.img"
	FilesFile        = "files.img"
	StatsDumpFile    = "stats-dump"
	StatsRestoreFile = "stats-restore"
	PipesDataFile    = "pipes-data.img"
	FifoDataFile     = "fifo-data.img"
	SkQueuesFile     = "sk-queues.img"
	RemapFpathFile   = "remap-fpath.img"
	TtyInfoFile      = "tty-info.img"
	TtyDataFile      = "tty-data.img"
	FileLocksFile    = "filelocks.img"
	CgroupFile       = "cgroup.img"
	SeccompFile      = "seccomp.img"
	CpuinfoFile      = "cpuinfo.img"
	MemfdFile        = "memfd.img"
	BpfmapDataFile   = "bpfmap-data.img"
	ApparmorFile     = "apparmor.img"
	RegFilesFile     = "reg-files.img"
	IrmapCacheFile   = "irmap-cache"

	// HostPstreeFile is gocr's own: pstree.img gives pids as the tree sees
	// them (1 for the init of its own pid namespace), as CRIU does; this
	// file gives the same entries, in the same order and with the threads
	// in the same order, as gocr's pid namespace sees them, so that a
	// restore into a fresh pid namespace can give the tree its old pids
	// outside too (clone3 set_tid at both levels). It has pstree.img's
	// magic and message, so crit decodes it; CRIU ignores it. Written only
	// when the tree has a pid namespace of its own.
	HostPstreeFile = "gocr-pstree-host.img"

	// SkPendingFile is gocr's own: what the client of each connection
	// not accepted yet had sent, waiting on the listener's side. Entries
	// are sk-queues.img's (magic and message), id_for naming the client
	// that sent the packet — in sk-queues.img it names the socket that
	// will read it, and CRIU has no way to save such data. CRIU ignores
	// the file; crit decodes it.
	SkPendingFile = "gocr-sk-pending.img"
	// GocrTimensRefFile is gocr's own: the dumper's monotonic and boot-time
	// clocks (a timens_entry, so crit decodes it; CRIU ignores the file)
	// at the instant the clocks of the tree's time namespace in
	// timens-ID.img were taken. With it a restore keeps the distance
	// between the two, which is what a root that made the namespace for
	// its children (and stays in the dumper's) knows of it. Written only
	// when the tree has a time namespace of its own.
	GocrTimensRefFile = "gocr-timens-ref.img"
	// GocrMqueueFilesFile is gocr's own: the open POSIX message queues
	// (gocrpb.MqueueFileEntry), which files.img lists as EXT files.
	GocrMqueueFilesFile = "gocr-mqueue-files.img"
	// GocrPidfdsFile is gocr's own: the open pidfds (gocrpb.PidfdEntry),
	// which files.img lists as EXT files.
	GocrPidfdsFile = "gocr-pidfds.img"
)

// Per-task images, named by thread id (core) or process id.
func CoreFile(tid uint32) string    { return fmt.Sprintf("core-%d.img", tid) }
func IdsFile(pid uint32) string     { return fmt.Sprintf("ids-%d.img", pid) }
func MmFile(pid uint32) string      { return fmt.Sprintf("mm-%d.img", pid) }
func CredsFile(pid uint32) string   { return fmt.Sprintf("creds-%d.img", pid) }
func FsFile(pid uint32) string      { return fmt.Sprintf("fs-%d.img", pid) }
func SigactsFile(pid uint32) string { return fmt.Sprintf("sigacts-%d.img", pid) }
func PagemapFile(pid uint32) string { return fmt.Sprintf("pagemap-%d.img", pid) }

// ShmemPagemapFile names the pagemap of a shared anonymous mapping.
func ShmemPagemapFile(shmid uint64) string { return fmt.Sprintf("pagemap-shmem-%d.img", shmid) }

// PagesFile names a raw page-data file; id comes from its PagemapHead.
func PagesFile(id uint32) string { return fmt.Sprintf("pages-%d.img", id) }

// FdinfoFile is named by the files_id of TaskKobjIdsEntry, shared by tasks
// that share an fd table.
func FdinfoFile(filesID uint32) string { return fmt.Sprintf("fdinfo-%d.img", filesID) }

// Images named by hexadecimal ids.
func GhostFileName(id uint32) string  { return fmt.Sprintf("ghost-file-%x.img", id) }
func TCPStreamFile(ino uint32) string { return fmt.Sprintf("tcp-stream-%x.img", ino) }

// Namespace images, named by the namespace id from TaskKobjIdsEntry.
func MntsFile(nsID uint32) string     { return fmt.Sprintf("mountpoints-%d.img", nsID) }
func UtsnsFile(nsID uint32) string    { return fmt.Sprintf("utsns-%d.img", nsID) }
func IpcVarFile(nsID uint32) string   { return fmt.Sprintf("ipcns-var-%d.img", nsID) }
func IpcnsShmFile(nsID uint32) string { return fmt.Sprintf("ipcns-shm-%d.img", nsID) }
func IpcnsSemFile(nsID uint32) string { return fmt.Sprintf("ipcns-sem-%d.img", nsID) }
func IpcnsMsgFile(nsID uint32) string { return fmt.Sprintf("ipcns-msg-%d.img", nsID) }
func UsernsFile(nsID uint32) string   { return fmt.Sprintf("userns-%d.img", nsID) }
func TimensFile(nsID uint32) string   { return fmt.Sprintf("timens-%d.img", nsID) }
func PidnsFile(nsID uint32) string    { return fmt.Sprintf("pidns-%d.img", nsID) }
func NetnsFile(nsID uint32) string    { return fmt.Sprintf("netns-%d.img", nsID) }
func NetdevFile(nsID uint32) string   { return fmt.Sprintf("netdev-%d.img", nsID) }

// GocrMqueueFile is gocr's own: the POSIX message queues of an ipc
// namespace the tree owns, with their messages (gocrpb.MqueueEntry).
func GocrMqueueFile(nsID uint32) string { return fmt.Sprintf("gocr-mqueue-%d.img", nsID) }

// partSuffix marks a file still being written; see doc.go.
const partSuffix = ".part"

// isImageName reports whether a directory entry is something this package
// writes (or CRIU would), complete or partial. Create refuses a directory
// holding one, so two dumps never mix.
func isImageName(name string) bool {
	name = strings.TrimSuffix(name, partSuffix)
	switch {
	case strings.HasSuffix(name, ".img"):
		return true
	case name == StatsDumpFile, name == StatsRestoreFile, name == IrmapCacheFile:
		return true
	}
	return false
}

// checkName refuses anything but a plain file name: images live directly in
// the directory.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("image name %q: not a plain file name", name)
	}
	if strings.HasSuffix(name, partSuffix) {
		return fmt.Errorf("image name %q: the %s suffix is reserved for files being written", name, partSuffix)
	}
	return nil
}
