package mount

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/mnt"
	"github.com/gocr/gocr/engine/image"
	"github.com/gocr/gocr/engine/procfs"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

// DumpOptions tune DumpNS. The zero value dumps with automatic external
// binds from gocr's own namespace and nothing else external.
type DumpOptions struct {
	// External marks mounts, by their mount point inside the namespace, as
	// external with the given key (criu's --external mnt[PATH]:KEY).
	External map[string]string
	// HostMounts is the table automatic external binds are searched in;
	// nil reads gocr's own /proc/self/mountinfo.
	HostMounts []procfs.Mount
	// NoAutoExternal records only the mounts named in External as
	// external; every other mount must then be a fresh virtual filesystem.
	NoAutoExternal bool
}

// MountError says which mount an operation failed on.
type MountError struct {
	ID         uint32
	MountPoint string
	Op         string
	Err        error
}

func (e *MountError) Error() string {
	return fmt.Sprintf("mount %d at %s: %s: %v", e.ID, e.MountPoint, e.Op, e.Err)
}

func (e *MountError) Unwrap() error { return e.Err }

// ErrUnsupported is the cause of a dump refusal: a mount that cannot be
// brought back faithfully.
var ErrUnsupported = errors.New("cannot be restored faithfully")

// dumpMount is one mount being dumped.
type dumpMount struct {
	m     procfs.Mount
	e     *mnt.MntEntry
	fd    int // O_PATH on the mount's root, -1 when overmounted or unreachable
	id    fileID
	isDir bool
}

func (d *dumpMount) err(op string, err error) error {
	return &MountError{ID: uint32(d.m.ID), MountPoint: d.m.MountPoint, Op: op, Err: err}
}

// DumpNS saves the mount tree of pid's mount namespace as
// mountpoints-<nsID>.img in dir, with the contents of every tmpfs that is
// not external as tmpfs-dev-<dev>.tar.gz.img. It changes nothing in the
// victim. It fails, naming the mount, on a mount that cannot be restored
// (see the package documentation for the policy).
func DumpNS(pid int, dir *image.Dir, nsID uint32, opts DumpOptions) error {
	entries, tmpfs, err := collect(pid, opts)
	if err != nil {
		return fmt.Errorf("dump mount namespace %d of pid %d: %w", nsID, pid, err)
	}
	defer func() {
		for _, t := range tmpfs {
			if t.fd >= 0 {
				unix.Close(t.fd)
			}
		}
	}()
	if err := writeTmpfs(pid, dir, tmpfs); err != nil {
		return fmt.Errorf("dump mount namespace %d of pid %d: %w", nsID, pid, err)
	}
	w, err := dir.Writer(image.Mnts, image.MntsFile(nsID))
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := w.Write(e); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Close()
}

// Collect reads pid's mount namespace and returns the entries DumpNS would
// write, without writing anything or reading tmpfs contents.
func Collect(pid int, opts DumpOptions) ([]*mnt.MntEntry, error) {
	entries, tmpfs, err := collect(pid, opts)
	for _, t := range tmpfs {
		if t.fd >= 0 {
			unix.Close(t.fd)
		}
	}
	return entries, err
}

// nsView returns the mounts of pid's mount namespace and an O_PATH fd on
// the namespace's root. A task chrooted inside its namespace sees, in its
// mountinfo and /proc/PID/root, only what is under its new root: then
// both are read from a throwaway thread of gocr's that joined the
// namespace (setns puts it at the namespace's root).
func nsView(pid int) ([]procfs.Mount, int, error) {
	rootPath := fmt.Sprintf("/proc/%d/root", pid)
	rootFd, err := unix.Open(rootPath, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, -1, fmt.Errorf("open %s: %w", rootPath, err)
	}
	mounts, err := procfs.MountInfo(pid)
	if err != nil {
		unix.Close(rootFd)
		return nil, -1, err
	}
	for _, m := range mounts {
		if m.MountPoint == "/" && m.Root == "/" {
			return mounts, rootFd, nil // the task sees the namespace's root
		}
	}
	// No mount shows as the whole root: the task is chrooted (or its
	// root mount's root is not its superblock's: then the namespace's
	// view is the same as the task's, and reading it again costs little).
	nsFd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/mnt", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(rootFd)
		return nil, -1, err
	}
	defer unix.Close(nsFd)
	var nsMounts []procfs.Mount
	nsRoot := -1
	err = onThrowawayThread(func() error {
		// This thread's /proc directory, opened first: the namespace's
		// /proc may be another pid namespace's, without gocr in it.
		self, err := unix.Open("/proc/thread-self", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(self)
		if err := setns(nsFd, unix.CLONE_NEWNS, fmt.Sprintf("the mount namespace of pid %d", pid)); err != nil {
			return err
		}
		mfd, err := unix.Openat(self, "mountinfo", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		f := os.NewFile(uintptr(mfd), "mountinfo")
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			return err
		}
		if nsMounts, err = procfs.ParseMountInfo(b); err != nil {
			return fmt.Errorf("mountinfo of the namespace of pid %d: %w", pid, err)
		}
		nsRoot, err = unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		if nsRoot >= 0 {
			unix.Close(nsRoot)
		}
		unix.Close(rootFd)
		return nil, -1, fmt.Errorf("pid %d is chrooted; its namespace's mounts: %w", pid, err)
	}
	unix.Close(rootFd)
	return nsMounts, nsRoot, nil
}

// tmpfsDump is a tmpfs superblock whose contents are saved: fd is an
// O_PATH fd on the root of the mount with the widest root.
type tmpfsDump struct {
	dev   uint32
	fd    int
	mount *dumpMount
}

func collect(pid int, opts DumpOptions) ([]*mnt.MntEntry, []tmpfsDump, error) {
	mounts, rootFd, err := nsView(pid)
	if err != nil {
		return nil, nil, err
	}
	defer unix.Close(rootFd)
	host := opts.HostMounts
	if host == nil && !opts.NoAutoExternal {
		if host, err = procfs.MountInfo(os.Getpid()); err != nil {
			return nil, nil, err
		}
	}

	ds := make([]*dumpMount, len(mounts))
	defer func() {
		for _, d := range ds {
			if d != nil && d.fd >= 0 {
				unix.Close(d.fd)
			}
		}
	}()
	for i, m := range mounts {
		d := &dumpMount{m: m, fd: -1}
		ds[i] = d
		if strings.HasSuffix(m.MountPoint, "(deleted)") {
			return nil, nil, d.err("mount point", fmt.Errorf("mount point was deleted: %w", ErrUnsupported))
		}
		fd, err := openPath(rootFd, m.MountPoint)
		if err != nil {
			continue // unreachable from pid's root: judged by mountinfo alone
		}
		if mid, err := mountOf(fd); err != nil || mid != m.ID {
			unix.Close(fd) // overmounted: the path shows another mount
			continue
		}
		if d.id, d.isDir, err = statID(fd); err != nil {
			unix.Close(fd)
			return nil, nil, d.err("stat root", err)
		}
		d.fd = fd
	}

	var entries []*mnt.MntEntry
	for _, d := range ds {
		if err := d.classify(opts, host); err != nil {
			return nil, nil, err
		}
		entries = append(entries, d.e)
	}
	tmpfs, err := pickTmpfs(ds)
	if err != nil {
		return nil, nil, err
	}
	return entries, tmpfs, nil
}

// classify builds the MntEntry of one mount and decides what it becomes.
func (d *dumpMount) classify(opts DumpOptions, host []procfs.Mount) error {
	m := d.m
	sbFlags, options := superFlags(m.SuperOptions)
	flags := mountFlags(m.Options)
	if m.Unbindable {
		flags |= unix.MS_UNBINDABLE
	}
	e := &mnt.MntEntry{
		MntId:       proto.Uint32(uint32(m.ID)),
		ParentMntId: proto.Uint32(uint32(m.ParentID)),
		RootDev:     proto.Uint32(kdev(m.Major, m.Minor)),
		Flags:       proto.Uint32(flags),
		SbFlags:     proto.Uint32(sbFlags),
		Root:        proto.String(m.Root),
		Mountpoint:  proto.String(m.MountPoint),
		Source:      proto.String(m.Source),
		Options:     proto.String(options),
	}
	base, _, _ := strings.Cut(m.FSType, ".")
	code, known := fstypeCodes[base]
	e.Fstype = proto.Uint32(uint32(code))
	if !known {
		e.Fsname = proto.String(m.FSType)
	}
	if m.Shared != 0 {
		e.SharedId = proto.Uint32(uint32(m.Shared))
	}
	if m.Master != 0 {
		e.MasterId = proto.Uint32(uint32(m.Master))
	}
	d.e = e

	if key, ok := opts.External[m.MountPoint]; ok {
		e.ExtMount, e.ExtKey = proto.Bool(true), proto.String(key)
		return nil
	}
	if !opts.NoAutoExternal {
		if src := hostSource(m, d.id, d.fd >= 0, host); src != "" {
			e.ExtMount, e.ExtKey = proto.Bool(true), proto.String(HostKeyPrefix+src)
			return nil
		}
	}
	if freshTypes[m.FSType] {
		return nil
	}
	return d.err("dump", fmt.Errorf("%s filesystem from %q (device %d:%d, root %s) is not mounted in gocr's mount namespace and is not a virtual filesystem gocr recreates; mark it external (--external mnt[%s]:KEY): %w",
		m.FSType, m.Source, m.Major, m.Minor, m.Root, m.MountPoint, ErrUnsupported))
}

// pickTmpfs chooses, for every tmpfs superblock restored as a fresh
// instance, the mount its contents are read through: the one with the
// widest root, which must cover every other mount of that superblock.
func pickTmpfs(ds []*dumpMount) ([]tmpfsDump, error) {
	bySb := map[uint32][]*dumpMount{}
	var order []uint32
	for _, d := range ds {
		if d.e.GetExtMount() || d.m.FSType != "tmpfs" {
			continue
		}
		dev := d.e.GetRootDev()
		if bySb[dev] == nil {
			order = append(order, dev)
		}
		bySb[dev] = append(bySb[dev], d)
	}
	var out []tmpfsDump
	for _, dev := range order {
		group := bySb[dev]
		sort.SliceStable(group, func(i, j int) bool { return len(group[i].m.Root) < len(group[j].m.Root) })
		widest := group[0]
		for _, d := range group[1:] {
			if !under(d.m.Root, widest.m.Root) {
				return nil, d.err("dump tmpfs", fmt.Errorf("its root %s is outside %s, the widest root of its tmpfs visible in the namespace (at %s), so part of that tmpfs cannot be read: %w",
					d.m.Root, widest.m.Root, widest.m.MountPoint, ErrUnsupported))
			}
		}
		var via *dumpMount
		for _, d := range group {
			if d.m.Root == widest.m.Root && d.fd >= 0 {
				via = d
				break
			}
		}
		if via == nil {
			// Hidden under other mounts: writeTmpfs digs it out.
			out = append(out, tmpfsDump{dev: dev, fd: -1, mount: widest})
			continue
		}
		fd, err := unix.FcntlInt(uintptr(via.fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, via.err("dup", err)
		}
		out = append(out, tmpfsDump{dev: dev, fd: int(fd), mount: via})
	}
	return out, nil
}

// TmpfsFile names the tar of a tmpfs superblock, as CRIU does: by the
// kernel-encoded device number also found in MntEntry.root_dev.
func TmpfsFile(rootDev uint32) string { return fmt.Sprintf("tmpfs-dev-%d.tar.gz.img", rootDev) }

// ReadNS reads and checks the mount entries of one namespace.
func ReadNS(dir *image.Dir, nsID uint32) ([]*mnt.MntEntry, error) {
	name := image.MntsFile(nsID)
	entries, err := image.ReadAll[mnt.MntEntry](dir, image.Mnts, name)
	if err != nil {
		return nil, err
	}
	ids := map[uint32]bool{}
	for i, e := range entries {
		bad := func(field, format string, args ...any) error {
			return &image.Error{File: name, Entry: i, Field: field, Err: fmt.Errorf(format+": %w", append(args, image.ErrInvalid)...)}
		}
		if ids[e.GetMntId()] {
			return nil, bad("mnt_id", "mount id %d appears twice", e.GetMntId())
		}
		ids[e.GetMntId()] = true
		for _, f := range []struct{ name, v string }{{"mountpoint", e.GetMountpoint()}, {"root", e.GetRoot()}} {
			if !path.IsAbs(f.v) || path.Clean(f.v) != f.v || strings.ContainsRune(f.v, 0) {
				return nil, bad(f.name, "%q is not a clean absolute path", f.v)
			}
		}
		if e.GetExtMount() && e.GetExtKey() == "" {
			return nil, bad("ext_key", "external mount %d without a key", e.GetMntId())
		}
		if !e.GetExtMount() && !freshTypes[fstypeName(e)] {
			return nil, bad("fstype", "mount %d at %s: filesystem %q is neither external nor one gocr recreates", e.GetMntId(), e.GetMountpoint(), fstypeName(e))
		}
	}
	return entries, nil
}
