package files

import (
	"fmt"

	ext_file "github.com/checkpoint-restore/go-criu/v7/crit/images/ext-file"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/abi"
	"github.com/gocr/gocr/engine/image"
	"github.com/gocr/gocr/engine/ns"
)

// An open POSIX message queue: its /proc link looks like a path ("/NAME",
// on the mqueue filesystem of its ipc namespace, mounted nowhere the task
// can see), so it is told apart by its filesystem. CRIU's format has no
// entry for it: files.img lists it as an EXT file, and ns.Mqueues keeps
// what it is (the queue, its open flags) in gocr's own image; the queue
// itself belongs to its namespace (ns/mqueue.go).

// isMqueue says whether fd of pid is on an mqueue filesystem.
func isMqueue(pid, fd int) bool {
	var sfs unix.Statfs_t
	return unix.Statfs(fmt.Sprintf("/proc/%d/fd/%d", pid, fd), &sfs) == nil && sfs.Type == abi.MqueueMagic
}

// dumpMqueue records an open message queue.
func (s *Set) dumpMqueue(pid int, fd Fd) (uint32, error) {
	if s.Mqueues == nil {
		return 0, fmt.Errorf("a POSIX message queue, and the dump collects none")
	}
	e, err := s.Mqueues.DumpFile(pid, fd.Fd, fd.Info.Flags, fd.Target)
	if err != nil {
		return 0, err
	}
	typ := fdinfo.FdTypes_EXT
	id := s.add(&fdinfo.FileEntry{Type: &typ, Ext: &ext_file.ExtFileEntry{Fown: noOwner()}})
	e.Id = ptr(id)
	return id, nil
}

// openMqueue opens an open message queue of the image in gocr: one of the
// tree's own ipc namespace was opened when the namespace was restored
// (and is taken over here), one of gocr's namespace is opened by name.
func (r *Restorer) openMqueue(id uint32) (int, error) {
	e, ok := r.MqueueFiles[id]
	if !ok {
		return -1, fmt.Errorf("an EXT file that is no message queue of %s: not supported", image.GocrMqueueFilesFile)
	}
	if fd, ok := r.MqueueFds[id]; ok {
		delete(r.MqueueFds, id)
		return fd, nil
	}
	return ns.OpenMqueueFile(e)
}
