package files

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/memfd"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/gocr/gocr/engine/image"
	"github.com/gocr/gocr/engine/mem"
	"github.com/gocr/gocr/engine/procfs"
)

// A memfd is stored as CRIU stores it: each open file (an fd, or a mapping
// with no fd) is a memfd_file_entry in files.img with its flags and offset,
// naming an inode of memfd.img, which has the name, owner, size and seals;
// the contents are the inode's shmem pages, in pagemap-shmem-<shmid>.img
// with shmid the inode number, like shared anonymous memory.

// memfdPrefix starts the /proc link of a memfd: "/memfd:NAME (deleted)".
const memfdPrefix = "/memfd:"

// IDMap translates a file owner's uid and gid between gocr's user namespace
// and the dumped tree's: images keep the ids the tree sees, as CRIU does.
type IDMap func(uid, gid uint32) (uint32, uint32, error)

// memfdInode is one memfd inode of a dump: its memfd.img entry, and an fd
// of gocr's on it (an open file of its own, so reading it moves no offset
// of the task's) until its contents are saved.
type memfdInode struct {
	entry *memfd.MemfdInodeEntry
	fd    int
}

// shmemDev is the device of the kernel's internal shmem mount, where every
// memfd (but hugetlb ones) and all shared anonymous memory live: a file
// there is a memfd, whatever its name says.
var shmemDev = sync.OnceValues(func() (uint64, error) {
	fd, err := unix.MemfdCreate("gocr-probe", unix.MFD_CLOEXEC)
	if err != nil {
		return 0, fmt.Errorf("memfd_create: %w", err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, err
	}
	return st.Dev, nil
})

// dumpMemfd records a memfd the task has an fd of. gocr takes a copy of
// that fd with pidfd_getfd (5.6), without injecting anything.
func (s *Set) dumpMemfd(pid int, fd Fd) (uint32, error) {
	local, err := takeFd(pid, fd.Fd)
	if err != nil {
		return 0, err
	}
	defer unix.Close(local)
	name := strings.TrimSuffix(strings.TrimPrefix(fd.Target, memfdPrefix), " (deleted)")
	ino, err := s.memfdInode(local, name)
	if err != nil {
		return 0, err
	}
	return s.addMemfd(fd.Info.Flags&^unix.O_CLOEXEC, uint64(fd.Info.Pos), ino), nil
}

// MemfdMapping records the memfd a VMA maps, reached through
// /proc/PID/map_files (the task may have no fd of it), and returns its file
// id; a VMA maps it through a file of its own, one per inode and flags.
func (s *Set) MemfdMapping(pid int, v procfs.VMA, flags uint32) (uint32, error) {
	local, err := unix.Open(fmt.Sprintf("/proc/%d/map_files/%x-%x", pid, v.Start, v.End), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open mapped memfd through map_files: %w", err)
	}
	defer unix.Close(local)
	ino, err := s.memfdInode(local, strings.TrimPrefix(v.Path, memfdPrefix))
	if err != nil {
		return 0, err
	}
	key := fmt.Sprintf("memfd:%d:%o", ino, flags)
	if id, ok := s.byKey[key]; ok {
		return id, nil
	}
	id := s.addMemfd(flags, 0, ino)
	s.byKey[key] = id
	return id, nil
}

func (s *Set) addMemfd(flags uint32, pos uint64, inodeID uint32) uint32 {
	typ := fdinfo.FdTypes_MEMFD
	return s.add(&fdinfo.FileEntry{Type: &typ, Memfd: &memfd.MemfdFileEntry{
		Flags: &flags, Pos: &pos, Fown: noOwner(), InodeId: &inodeID,
	}})
}

// takeFd gets gocr the task's open file behind fd: the very file with
// pidfd_getfd, or on kernels before 5.6 a new open of it through /proc.
func takeFd(pid, fd int) (int, error) {
	pfd, err := unix.PidfdOpen(pid, 0)
	if err == nil {
		defer unix.Close(pfd)
		got, err := unix.PidfdGetfd(pfd, fd, 0)
		if err == nil {
			return got, nil
		}
		if err != unix.ENOSYS {
			return -1, fmt.Errorf("pidfd_getfd: %w", err)
		}
	} else if err != unix.ENOSYS {
		return -1, fmt.Errorf("pidfd_open: %w", err)
	}
	got, err := unix.Open(fmt.Sprintf("/proc/%d/fd/%d", pid, fd), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open through /proc: %w", err)
	}
	return got, nil
}

// memfdInode returns the inode id of the memfd behind gocr's fd local,
// describing the inode the first time: owner, size, mode and seals.
func (s *Set) memfdInode(local int, name string) (uint32, error) {
	var st unix.Stat_t
	if err := unix.Fstat(local, &st); err != nil {
		return 0, fmt.Errorf("stat memfd: %w", err)
	}
	dev, err := shmemDev()
	if err != nil {
		return 0, fmt.Errorf("find the shmem device: %w", err)
	}
	if st.Dev != dev {
		return 0, fmt.Errorf("memfd %q is on device %d:%d, not the shmem device (hugetlb memfds are not supported yet)", name, unix.Major(st.Dev), unix.Minor(st.Dev))
	}
	if in, ok := s.memfds[st.Ino]; ok {
		return uint32(in.entry.GetInodeId()), nil
	}
	if st.Ino > 1<<32-1 {
		return 0, fmt.Errorf("memfd %q: inode %d does not fit the image's 32-bit shmid", name, st.Ino)
	}
	seals, err := unix.FcntlInt(uintptr(local), unix.F_GET_SEALS, 0)
	if err != nil {
		return 0, fmt.Errorf("memfd %q: F_GET_SEALS: %w", name, err)
	}
	own, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", local), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("memfd %q: open a file of gocr's on it: %w", name, err)
	}
	id := uint32(len(s.memfdList) + 1)
	e := &memfd.MemfdInodeEntry{
		Name: &name, Uid: ptr(st.Uid), Gid: ptr(st.Gid), Size: ptr(uint64(st.Size)),
		Shmid: ptr(uint32(st.Ino)), Seals: ptr(uint32(seals)), InodeId: ptr(uint64(id)),
	}
	setMemfdMode(e, st.Mode)
	in := &memfdInode{entry: e, fd: own}
	s.memfds[st.Ino] = in
	s.memfdList = append(s.memfdList, in)
	return id, nil
}

// WriteMemfds writes memfd.img and the contents of every memfd inode. It
// returns the pages written. inside, if not nil, turns owners into the
// ids the tree sees.
func (s *Set) WriteMemfds(dir *image.Dir, inside IDMap) (uint64, error) {
	if len(s.memfdList) == 0 {
		return 0, nil
	}
	w, err := dir.Writer(image.MemfdInode, image.MemfdFile)
	if err != nil {
		return 0, err
	}
	for _, in := range s.memfdList {
		e := in.entry
		if inside != nil {
			uid, gid, err := inside(e.GetUid(), e.GetGid())
			if err != nil {
				w.Abort()
				return 0, fmt.Errorf("memfd %q: %w", e.GetName(), err)
			}
			e.Uid, e.Gid = &uid, &gid
		}
		if err := w.Write(e); err != nil {
			w.Abort()
			return 0, err
		}
	}
	if err := w.Close(); err != nil {
		return 0, err
	}
	var pages uint64
	for _, in := range s.memfdList {
		n, err := mem.DumpShmemFile(dir, uint64(in.entry.GetShmid()), in.fd, in.entry.GetSize())
		if err != nil {
			return pages, fmt.Errorf("memfd %q contents: %w", in.entry.GetName(), err)
		}
		pages += n
	}
	return pages, nil
}

// MemfdPages is the size of the memfds WriteMemfds saves, in pages: what
// it scans for data.
func (s *Set) MemfdPages() uint64 {
	var n uint64
	for _, in := range s.memfdList {
		n += (in.entry.GetSize() + image.PageSize - 1) / image.PageSize
	}
	return n
}

// closeMemfds lets go of the memfds' files the dump holds open.
func (s *Set) closeMemfds() {
	for _, in := range s.memfdList {
		unix.Close(in.fd)
	}
	s.memfdList, s.memfds = nil, map[uint64]*memfdInode{}
}

// memfdModeField is memfd_inode_entry.mode (field 9, CRIU 3.19): the
// inode's st_mode. go-criu's schema predates it, so it travels as a raw
// field that CRIU reads and older readers skip.
const memfdModeField protowire.Number = 9

func setMemfdMode(e *memfd.MemfdInodeEntry, mode uint32) {
	b := protowire.AppendTag(nil, memfdModeField, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(mode))
	m := e.ProtoReflect()
	m.SetUnknown(append(m.GetUnknown(), b...))
}

// memfdMode reads memfd_inode_entry.mode, if the image has it.
func memfdMode(e *memfd.MemfdInodeEntry) (uint32, bool) {
	b := e.ProtoReflect().GetUnknown()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, false
		}
		b = b[n:]
		if num == memfdModeField && typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(b)
			return uint32(v), n > 0
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return 0, false
		}
		b = b[n:]
	}
	return 0, false
}

// restoredMemfd is a memfd inode remade for the restore: gocr's fd of it,
// from which every file entry of the inode opens a file of its own.
type restoredMemfd struct {
	entry  *memfd.MemfdInodeEntry
	fd     int
	sealed bool
	// ownGiven says the file memfd_create made has gone to an fd of the
	// tree already (see openMemfd).
	ownGiven bool
}

// openMemfd opens a file of the memfd inode the entry names, with the
// entry's flags and offset, making the inode on first use.
//
// A writable file opened through /proc counts as a writer of the inode,
// and exec of an inode with writers fails (ETXTBSY); the file memfd_create
// makes does not count. So, as a program's own memfd_create file would
// be, the inode's first writable fd and its writable mappings get that
// file itself (a mapping has no use for a description of its own); other
// fds open files of their own.
func (r *Restorer) openMemfd(id uint32, e *memfd.MemfdFileEntry) (int, error) {
	in, err := r.memfdInode(uint64(e.GetInodeId()))
	if err != nil {
		return -1, err
	}
	flags := int(e.GetFlags()) &^ (unix.O_CREAT | unix.O_EXCL | unix.O_TRUNC | unix.O_NOCTTY)
	var fd int
	if own := !r.FdFiles[id] || !in.ownGiven; flags&unix.O_ACCMODE == unix.O_RDWR && own {
		if r.FdFiles[id] {
			in.ownGiven = true
		}
		if fd, err = unix.FcntlInt(uintptr(in.fd), unix.F_DUPFD_CLOEXEC, 0); err != nil {
			return -1, fmt.Errorf("memfd %q: dup: %w", in.entry.GetName(), err)
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("memfd %q: set flags %#o: %w", in.entry.GetName(), flags, err)
		}
	} else if fd, err = unix.Open(fmt.Sprintf("/proc/self/fd/%d", in.fd), flags|unix.O_CLOEXEC, 0); err != nil {
		return -1, fmt.Errorf("memfd %q: open (flags %#o): %w", in.entry.GetName(), flags, err)
	}
	if pos := e.GetPos(); pos != 0 {
		if _, err := unix.Seek(fd, int64(pos), unix.SEEK_SET); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("memfd %q: seek to %d: %w", in.entry.GetName(), pos, err)
		}
	}
	return fd, nil
}

// memfdInode makes the memfd inode with that id: memfd_create with the
// saved name, then size, contents, owner and mode. Seals come last, once
// every file and mapping of it is made (SealMemfds): a write seal would
// refuse the writable mappings and the contents.
func (r *Restorer) memfdInode(id uint64) (*restoredMemfd, error) {
	if in, ok := r.memfds[id]; ok {
		return in, nil
	}
	e, ok := r.MemfdInodes[id]
	if !ok {
		return nil, fmt.Errorf("memfd inode %d: not in %s", id, image.MemfdFile)
	}
	if e.GetHugetlbFlag() != 0 {
		return nil, fmt.Errorf("memfd %q: hugetlb memfds are not supported yet", e.GetName())
	}
	fd, err := createMemfd(e.GetName())
	if err != nil {
		return nil, fmt.Errorf("memfd %q: %w", e.GetName(), err)
	}
	if err := r.fillMemfd(fd, e); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("memfd %q: %w", e.GetName(), err)
	}
	in := &restoredMemfd{entry: e, fd: fd}
	r.memfds[id] = in
	return in, nil
}

// createMemfd makes a memfd that can take any seals and is executable, as
// a memfd is by default: MFD_EXEC (6.3) says so where vm.memfd_noexec
// would have it otherwise; older kernels do not know the flag.
func createMemfd(name string) (int, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_EXEC)
	if err == unix.EINVAL {
		fd, err = unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	}
	if err != nil {
		return -1, fmt.Errorf("memfd_create: %w", err)
	}
	return fd, nil
}

func (r *Restorer) fillMemfd(fd int, e *memfd.MemfdInodeEntry) error {
	if err := unix.Ftruncate(fd, int64(e.GetSize())); err != nil {
		return fmt.Errorf("set size %d: %w", e.GetSize(), err)
	}
	pages, err := mem.FillShmemFile(r.Dir, uint64(e.GetShmid()), fd, e.GetSize())
	if err != nil {
		return err
	}
	r.Pages += pages
	uid, gid := e.GetUid(), e.GetGid()
	if r.HostIDs != nil {
		if uid, gid, err = r.HostIDs(uid, gid); err != nil {
			return err
		}
	}
	if err := unix.Fchown(fd, int(uid), int(gid)); err != nil {
		return fmt.Errorf("chown %d:%d: %w", uid, gid, err)
	}
	if mode, ok := memfdMode(e); ok {
		if err := unix.Fchmod(fd, mode&0o7777); err != nil {
			return fmt.Errorf("chmod %#o: %w", mode&0o7777, err)
		}
	}
	return nil
}

// SealMemfds puts the saved seals on every memfd made so far. Call it
// once all files and mappings of the tree are in place.
func (r *Restorer) SealMemfds() error {
	ids := make([]uint64, 0, len(r.memfds))
	for id := range r.memfds {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		in := r.memfds[id]
		if in.sealed || in.entry.GetSeals() == 0 {
			continue
		}
		if _, err := unix.FcntlInt(uintptr(in.fd), unix.F_ADD_SEALS, int(in.entry.GetSeals())); err != nil {
			return fmt.Errorf("memfd %q: add seals %#x: %w", in.entry.GetName(), in.entry.GetSeals(), err)
		}
		in.sealed = true
	}
	return nil
}
