package mount

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/mnt"
	"github.com/gocr/gocr/engine/image"
	"github.com/gocr/gocr/engine/kernel"
	"github.com/gocr/gocr/engine/procfs"
	"golang.org/x/sys/unix"
)

// RestoreOptions tune RestoreNS.
type RestoreOptions struct {
	// External maps the key of an external mount to the host path to bind
	// (criu's --external mnt[KEY]:PATH). Keys DumpNS made itself
	// (HostKeyPrefix + path) need no entry; an entry overrides them.
	External map[string]string
	// NsPid names the task whose pid, net, ipc and cgroup namespaces the
	// fresh proc, sysfs, mqueue and cgroup2 instances belong to; 0 means
	// gocr's own. The restore's first stub is the natural choice.
	NsPid int
	// Features, when set, gates the kernel features used (open-tree,
	// move-mount-set-group) with clear errors; nil tries them directly.
	Features *kernel.Features
	// Set, when set, is shared by every namespace of one restore: their
	// common filesystems are made once, and their mounts are kept there
	// for reopening files (see Set).
	Set *Set
}

// rmount is one mount being restored.
type rmount struct {
	e        *mnt.MntEntry
	parent   *rmount
	children []*rmount
	sb       *superblock // fresh filesystems; nil for external binds
	hostPath string      // external binds
	fd       int         // the mount, detached then attached; -1 before
}

func (m *rmount) err(op string, err error) error {
	return &MountError{ID: m.e.GetMntId(), MountPoint: m.e.GetMountpoint(), Op: op, Err: err}
}

func (m *rmount) extMaster(shared map[uint32]bool) bool {
	return m.e.GetMasterId() != 0 && !shared[m.e.GetMasterId()]
}

// superblock is a fresh filesystem instance: made by fsopen/fsmount, then
// attached in the staging area at stage, from where its mounts are cloned.
type superblock struct {
	dev     uint32
	fstype  string
	creator *rmount // the mount with the widest root; its options make it
	tar     *os.File
	fd      int
	stage   string
}

// builder holds the state of one RestoreNS.
type builder struct {
	opts    RestoreOptions
	mounts  []*rmount // parent before child
	root    *rmount
	sbs     []*superblock
	shared  map[uint32]bool // every shared_id of the restore's namespaces
	groups  []*group
	nsFds   map[string]int // net, ipc, cgroup, pid of NsPid, when not ours
	stageFd int
	topRoot int // the mount currently on top at "/" of the new tree
}

// RestoreNS rebuilds the mount tree of namespace nsID from dir inside the
// mount namespace mntNsFd and makes it that namespace's root: every task
// there whose root or cwd was the namespace's old root now has the new
// one (pivot_root), and the old tree is detached. mntNsFd is typically
// /proc/STUB/ns/mnt of the restore's first stub, a fresh CLONE_NEWNS copy
// of gocr's namespace; nothing is mounted or propagated outside it.
//
// The work is done on a throwaway OS thread of the calling process (see
// the package documentation). A failure before the staging root replaces
// the namespace's root leaves the namespace as it was (its mounts made
// private); a later one leaves it with a bare staging root: the caller
// discards its stub either way.
func RestoreNS(mntNsFd int, dir *image.Dir, nsID uint32, opts RestoreOptions) error {
	entries, err := ReadNS(dir, nsID)
	if err != nil {
		return err
	}
	b, err := plan(nsID, entries, opts)
	if err != nil {
		return fmt.Errorf("restore mount namespace %d: %w", nsID, err)
	}
	defer b.close()
	if err := b.openImages(dir); err != nil {
		return fmt.Errorf("restore mount namespace %d: %w", nsID, err)
	}
	if err := b.openNamespaces(); err != nil {
		return fmt.Errorf("restore mount namespace %d: %w", nsID, err)
	}
	if err := onThrowawayThread(func() error { return b.build(mntNsFd) }); err != nil {
		return fmt.Errorf("restore mount namespace %d: %w", nsID, err)
	}
	return nil
}

// RestoreNSOf is RestoreNS into the mount namespace of pid, with pid's
// other namespaces for the fresh filesystems unless opts.NsPid says
// otherwise.
func RestoreNSOf(pid int, dir *image.Dir, nsID uint32, opts RestoreOptions) error {
	p := fmt.Sprintf("/proc/%d/ns/mnt", pid)
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("restore mount namespace %d: open %s: %w", nsID, p, err)
	}
	defer unix.Close(fd)
	if opts.NsPid == 0 {
		opts.NsPid = pid
	}
	return RestoreNS(fd, dir, nsID, opts)
}

// plan orders the mounts, finds the fresh superblocks and the peer
// groups: those of the namespaces of opts.Set together (see peers.go).
func plan(nsID uint32, entries []*mnt.MntEntry, opts RestoreOptions) (*builder, error) {
	b := &builder{opts: opts, shared: map[uint32]bool{}, nsFds: map[string]int{}, stageFd: -1, topRoot: -1}
	peers, err := opts.Set.peersOf(nsID, entries)
	if err != nil {
		return nil, err
	}
	for id := range peers.byID {
		b.shared[id] = true
	}
	byID := map[uint32]*rmount{}
	var all []*rmount
	for _, e := range entries {
		m := &rmount{e: e, fd: -1}
		byID[e.GetMntId()] = m
		all = append(all, m)
	}
	for _, m := range all {
		p, ok := byID[m.e.GetParentMntId()]
		if !ok || p == m {
			if b.root != nil {
				return nil, m.err("plan", fmt.Errorf("a second root: mount %d at %s has no parent either", b.root.e.GetMntId(), b.root.e.GetMountpoint()))
			}
			b.root = m
			continue
		}
		if !under(m.e.GetMountpoint(), p.e.GetMountpoint()) {
			return nil, m.err("plan", fmt.Errorf("not under its parent %d at %s", p.e.GetMntId(), p.e.GetMountpoint()))
		}
		m.parent = p
		p.children = append(p.children, m)
	}
	if b.root == nil {
		return nil, errors.New("no root mount (every mount has a parent: a cycle)")
	}
	// Parent before child. Among siblings, deeper mount points first: a
	// sibling below another's mount point was mounted before the other
	// covered it. Then by id, roughly creation order.
	var walk func(m *rmount)
	walk = func(m *rmount) {
		b.mounts = append(b.mounts, m)
		sort.SliceStable(m.children, func(i, j int) bool {
			a, c := m.children[i].e, m.children[j].e
			da, dc := strings.Count(a.GetMountpoint(), "/"), strings.Count(c.GetMountpoint(), "/")
			if da != dc {
				return da > dc
			}
			return a.GetMntId() < c.GetMntId()
		})
		for _, c := range m.children {
			walk(c)
		}
	}
	walk(b.root)
	if len(b.mounts) != len(all) {
		return nil, fmt.Errorf("%d of %d mounts are not reachable from the root mount (a parent cycle)", len(all)-len(b.mounts), len(all))
	}

	bySb := map[uint32]*superblock{}
	for _, m := range b.mounts {
		e := m.e
		if e.GetExtMount() {
			p, err := hostPathOf(e, opts.External)
			if err != nil {
				return nil, m.err("plan", err)
			}
			m.hostPath = p
			continue
		}
		if m.extMaster(b.shared) {
			return nil, m.err("plan", fmt.Errorf("slave of peer group %d, which is outside the restore's mount namespaces (in gocr's own, say), but not an external bind", e.GetMasterId()))
		}
		sb := bySb[e.GetRootDev()]
		if sb == nil {
			sb = &superblock{dev: e.GetRootDev(), fstype: fstypeName(e), fd: -1}
			bySb[sb.dev] = sb
			b.sbs = append(b.sbs, sb)
		}
		if sb.creator == nil || len(e.GetRoot()) < len(sb.creator.e.GetRoot()) {
			sb.creator = m
		}
		m.sb = sb
	}
	for i, sb := range b.sbs {
		sb.stage = fmt.Sprintf("sb/%d", i)
	}
	if err := b.planGroups(peers); err != nil {
		return nil, err
	}
	return b, nil
}

// hostPathOf is the host path an external mount binds: the caller's
// mapping of its key, or the path in a key DumpNS made.
func hostPathOf(e *mnt.MntEntry, external map[string]string) (string, error) {
	key := e.GetExtKey()
	p, ok := external[key]
	if !ok {
		p, ok = strings.CutPrefix(key, HostKeyPrefix)
	}
	if !ok && key == RootKey {
		return "", fmt.Errorf("the tree's root mount was dumped with --root: restore needs --root DIR")
	}
	if !ok || !path.IsAbs(p) {
		return "", fmt.Errorf("external mount with key %q has no host path: pass --external mnt[%s]:PATH", key, key)
	}
	return p, nil
}

func (b *builder) openImages(dir *image.Dir) error {
	for _, sb := range b.sbs {
		if sb.fstype != "tmpfs" {
			continue
		}
		// Through the image directory's checks: the tar is an image file
		// like any other (regular, ours or root's, not writable by others).
		f, err := dir.OpenRaw(TmpfsFile(sb.dev))
		if errors.Is(err, fs.ErrNotExist) {
			// CRIU before 3.x named the tar by mount id.
			if f2, err2 := dir.OpenRaw(fmt.Sprintf("tmpfs-%d.tar.gz.img", sb.creator.e.GetMntId())); err2 == nil {
				f, err = f2, nil
			}
		}
		if err != nil {
			return sb.creator.err("open tmpfs contents", err)
		}
		sb.tar = f
	}
	return nil
}

// openNamespaces opens the namespaces of NsPid that differ from ours.
func (b *builder) openNamespaces() error {
	if b.opts.NsPid == 0 {
		return nil
	}
	for _, kind := range []string{"net", "ipc", "cgroup", "pid"} {
		theirs, err := procfs.NamespaceInode(b.opts.NsPid, kind)
		if err != nil {
			if os.IsNotExist(errors.Unwrap(err)) {
				continue
			}
			return err
		}
		ours, err := procfs.NamespaceInode(os.Getpid(), kind)
		if err != nil || ours == theirs {
			continue
		}
		p := fmt.Sprintf("/proc/%d/ns/%s", b.opts.NsPid, kind)
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", p, err)
		}
		b.nsFds[kind] = fd
	}
	return nil
}

func (b *builder) close() {
	for _, m := range b.mounts {
		if m.fd >= 0 {
			unix.Close(m.fd)
		}
	}
	for _, sb := range b.sbs {
		if sb.fd >= 0 {
			unix.Close(sb.fd)
		}
		if sb.tar != nil {
			sb.tar.Close()
		}
	}
	for _, g := range b.groups {
		if g.helper >= 0 {
			unix.Close(g.helper)
		}
	}
	for _, fd := range b.nsFds {
		unix.Close(fd)
	}
	if b.stageFd >= 0 {
		unix.Close(b.stageFd)
	}
}

func (b *builder) require(name string) error {
	if b.opts.Features == nil {
		return nil
	}
	return kernel.Require(*b.opts.Features, name)
}

// build runs on the throwaway thread.
func (b *builder) build(mntNsFd int) error {
	if err := b.require("open-tree"); err != nil {
		return fmt.Errorf("rebuild mount tree: %w", err)
	}
	if len(b.groups) > 0 {
		if err := b.require("move-mount-set-group"); err != nil {
			return fmt.Errorf("rebuild mount propagation: %w", err)
		}
	}
	// In gocr's namespace: clone the host sources of external binds.
	for _, m := range b.mounts {
		if m.sb != nil {
			continue
		}
		fd, err := unix.OpenTree(unix.AT_FDCWD, m.hostPath, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			return m.err("clone host path "+m.hostPath, err)
		}
		m.fd = fd
		// Cut the clone from the host's peer group at once, so nothing
		// mounted in the namespace propagates to the host; a slave of a
		// host group stays a slave (receiving only).
		prop := uintptr(unix.MS_PRIVATE)
		if m.extMaster(b.shared) && m.e.GetSharedId() == 0 {
			prop = unix.MS_SLAVE
		}
		if err := setPropagation(fd, prop); err != nil {
			return m.err("make host clone private", err)
		}
	}
	if err := b.hostHelpers(); err != nil {
		return err
	}
	// The namespaces fresh filesystems belong to.
	for _, kind := range []struct {
		name string
		flag int
	}{{"net", unix.CLONE_NEWNET}, {"ipc", unix.CLONE_NEWIPC}, {"cgroup", unix.CLONE_NEWCGROUP}} {
		if fd, ok := b.nsFds[kind.name]; ok {
			if err := setns(fd, kind.flag, kind.name+" namespace of pid "+fmt.Sprint(b.opts.NsPid)); err != nil {
				return err
			}
		}
	}
	for _, sb := range b.sbs {
		if err := b.makeSuperblock(sb); err != nil {
			return err
		}
	}
	stage, err := newFS("tmpfs", map[string]string{"mode": "0700"}, -1)
	if err != nil {
		return fmt.Errorf("staging tmpfs: %w", err)
	}
	b.stageFd = stage

	// Into the target namespace, where the staging tmpfs becomes the root
	// first: the old tree is detached whole, and all the work happens in
	// gocr's own tmpfs, never in a directory of the host.
	if err := setns(mntNsFd, unix.CLONE_NEWNS, "target mount namespace"); err != nil {
		return err
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make the target namespace private: %w", err)
	}
	if err := b.enterStage(); err != nil {
		return err
	}
	// From here on the namespace's old tree is gone: a failure leaves it
	// with the bare staging root, and the caller discards its stub.
	if err := b.attachAll(); err != nil {
		return err
	}
	if err := b.makeHelpers(); err != nil {
		return err
	}
	if err := b.pivot(); err != nil {
		return err
	}
	// Propagation last: pivot_root refuses a shared new root, and with
	// the old root gone no umount can propagate into the new tree. The
	// helpers are detached mounts; they go when their fds are closed.
	if err := b.propagate(); err != nil {
		return err
	}
	for _, m := range b.mounts {
		if err := b.opts.Set.keepMount(m.e.GetMntId(), m.e.GetMountpoint(), m.fd); err != nil {
			return err
		}
	}
	return nil
}

// makeSuperblock creates a fresh filesystem, detached, and fills a tmpfs.
func (b *builder) makeSuperblock(sb *superblock) error {
	// Older kernels (5.10 here; 6.18 allows it) refuse to clone a mount
	// that is not in the caller's namespace (open_tree on a detached mount
	// gives EINVAL): there each namespace gets a filesystem of its own.
	if fd, err := b.opts.Set.superblock(sb.dev); err == nil && fd >= 0 {
		sb.fd = fd // made for another namespace, contents and all
		return nil
	}
	if err := b.newSuperblock(sb); err != nil {
		return err
	}
	_ = b.opts.Set.keepSuperblock(sb.dev, sb.fd) // best effort, see above
	return nil
}

// newSuperblock creates the filesystem sb with the options of its
// creator mount, filled from its image if it is a tmpfs.
func (b *builder) newSuperblock(sb *superblock) error {
	m := sb.creator
	opts := map[string]string{}
	var order []string
	for _, o := range strings.Split(m.e.GetOptions(), ",") {
		if o == "" || o == "seclabel" {
			continue
		}
		k, v, _ := strings.Cut(o, "=")
		if _, dup := opts[k]; !dup {
			order = append(order, k)
		}
		opts[k] = v
	}
	sbf := m.e.GetSbFlags()
	for _, n := range sbFlagNames {
		if sbf&n.flag != 0 && n.name != "mand" && !(n.name == "ro" && sb.fstype == "tmpfs") {
			opts[n.name] = ""
			order = append(order, n.name)
		}
	}
	pidns := -1
	if sb.fstype == "proc" {
		if fd, ok := b.nsFds["pid"]; ok {
			pidns = fd
		}
	}
	if src := m.e.GetSource(); src != "" {
		if _, ok := opts["source"]; !ok {
			opts["source"] = src
			order = append([]string{"source"}, order...)
		}
	}
	fd, err := newFSOrdered(sb.fstype, opts, order, pidns)
	if err != nil {
		return m.err("create "+sb.fstype, err)
	}
	sb.fd = fd
	if sb.tar == nil {
		return nil
	}
	root := m.e.GetRoot()
	dfd, err := mkdirAll(fd, rel(root, "/"))
	if err != nil {
		return m.err("make root "+root+" in new tmpfs", err)
	}
	defer unix.Close(dfd)
	if err := extractTar(dfd, sb.tar); err != nil {
		return m.err("restore tmpfs contents from "+sb.tar.Name(), err)
	}
	if sbf&unix.MS_RDONLY != 0 {
		pfd, err := unix.Fspick(fd, "", unix.FSPICK_EMPTY_PATH|unix.FSPICK_CLOEXEC)
		if err == nil {
			err = unix.FsconfigSetFlag(pfd, "ro")
			if err == nil {
				err = unix.FsconfigReconfigure(pfd)
			}
			unix.Close(pfd)
		}
		if err != nil {
			return m.err("make tmpfs read-only", err)
		}
	}
	return nil
}

func newFS(fstype string, opts map[string]string, pidns int) (int, error) {
	var order []string
	for k := range opts {
		order = append(order, k)
	}
	sort.Strings(order)
	return newFSOrdered(fstype, opts, order, pidns)
}

// newFSOrdered makes a new filesystem instance with fsopen/fsconfig and
// returns it as a detached mount. The kernel's own message is added to a
// failure.
func newFSOrdered(fstype string, opts map[string]string, order []string, pidns int) (int, error) {
	fsfd, err := unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("fsopen(%s): %w", fstype, err)
	}
	defer unix.Close(fsfd)
	fail := func(what string, err error) error {
		buf := make([]byte, 512)
		if n, rerr := unix.Read(fsfd, buf); rerr == nil && n > 0 {
			return fmt.Errorf("%s: %w (kernel says %q)", what, err, strings.TrimSpace(string(buf[:n])))
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	if pidns >= 0 {
		if err := unix.FsconfigSetFd(fsfd, "pidns", pidns); err != nil {
			if err != unix.EINVAL {
				return -1, fail("proc for another pid namespace", err)
			}
			// A kernel without the pidns option: make it from inside.
			return newFSInPidNS(fstype, opts, order, pidns)
		}
	}
	for _, k := range order {
		v := opts[k]
		if v == "" {
			err = unix.FsconfigSetFlag(fsfd, k)
		} else {
			err = unix.FsconfigSetString(fsfd, k, v)
		}
		if err != nil {
			return -1, fail(fmt.Sprintf("option %s=%s", k, v), err)
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return -1, fail("create", err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return -1, fail("fsmount", err)
	}
	return mfd, nil
}

// mkdirAll makes p (relative) below dirfd and returns it opened.
func mkdirAll(dirfd int, p string) (int, error) {
	cur, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if p == "." {
		return cur, nil
	}
	for _, c := range strings.Split(p, "/") {
		if err := unix.Mkdirat(cur, c, 0o755); err != nil && err != unix.EEXIST {
			unix.Close(cur)
			return -1, err
		}
		next, err := unix.Openat(cur, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(cur)
		if err != nil {
			return -1, err
		}
		cur = next
	}
	return cur, nil
}

// attachAll puts the superblocks in the staging area, then every mount
// in its place, parent before child, each with its flags.
func (b *builder) attachAll() error {
	for _, dir := range []string{"sb", "h", "root"} {
		if err := unix.Mkdirat(b.stageFd, dir, 0o700); err != nil {
			return fmt.Errorf("staging area: %w", err)
		}
	}
	for _, sb := range b.sbs {
		if err := unix.Mkdirat(b.stageFd, sb.stage, 0o700); err != nil {
			return fmt.Errorf("staging area: %w", err)
		}
		if err := unix.MoveMount(sb.fd, "", b.stageFd, sb.stage, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
			return sb.creator.err("attach new "+sb.fstype+" in the staging area", err)
		}
	}
	for _, m := range b.mounts {
		if err := b.attach(m); err != nil {
			return err
		}
		// Parents first: nothing is mounted on m yet.
		b.opts.Set.lookUpWanted(m.e.GetMntId(), m.e.GetMountpoint(), m.fd)
	}
	return nil
}

func (b *builder) attach(m *rmount) error {
	if m.sb != nil {
		src := path.Join(m.sb.stage, rel(m.e.GetRoot(), "/"))
		fd, err := unix.OpenTree(b.stageFd, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_SYMLINK_NOFOLLOW)
		if err != nil {
			return m.err("clone root "+m.e.GetRoot()+" of the new "+m.sb.fstype, err)
		}
		m.fd = fd
	}
	var st unix.Stat_t
	if err := unix.Fstat(m.fd, &st); err != nil {
		return m.err("stat", err)
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	if m == b.root {
		if !isDir {
			return m.err("attach", errors.New("the root mount is not a directory"))
		}
		if err := unix.MoveMount(m.fd, "", b.stageFd, "root", unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
			return m.err("attach as the new root", err)
		}
		b.topRoot = m.fd
	} else {
		tfd, err := openPath(b.topRoot, m.e.GetMountpoint())
		if err == unix.ENOENT {
			if err = b.makeMountpoint(m, isDir); err == nil {
				tfd, err = openPath(b.topRoot, m.e.GetMountpoint())
			}
		}
		if err != nil {
			return m.err("find the mount point", err)
		}
		err = unix.MoveMount(m.fd, "", tfd, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
		unix.Close(tfd)
		if err != nil {
			return m.err("attach", err)
		}
		if m.e.GetMountpoint() == "/" {
			b.topRoot = m.fd
		}
	}
	err := setMountFlags(m.fd, m.e.GetFlags())
	if err == unix.ENOSYS {
		err = b.remountFlags(m, isDir)
	}
	if err != nil {
		return m.err("set flags "+flagString(m.e.GetFlags()), err)
	}
	return nil
}

// remountFlags sets a mount's flags with mount(2) (MS_REMOUNT|MS_BIND) on
// kernels without mount_setattr (before 5.12). mount(2) takes a path: the
// thread goes to the mount itself (a directory) or to the directory its
// mount point is in (a file), where the new mount is the top one.
func (b *builder) remountFlags(m *rmount, isDir bool) error {
	target := "."
	if isDir {
		if err := unix.Fchdir(m.fd); err != nil {
			return err
		}
	} else {
		mp := m.e.GetMountpoint()
		dfd, err := openPath(b.topRoot, path.Dir(mp))
		if err != nil {
			return err
		}
		err = unix.Fchdir(dfd)
		unix.Close(dfd)
		if err != nil {
			return err
		}
		target = path.Base(mp)
	}
	f := uintptr(m.e.GetFlags()) & (unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC |
		unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME | unix.MS_STRICTATIME)
	return unix.Mount("", target, "", unix.MS_REMOUNT|unix.MS_BIND|f, "")
}

// makeMountpoint creates a missing mount point, but only in a filesystem
// gocr made itself: writing into a host directory is not restore's call.
func (b *builder) makeMountpoint(m *rmount, isDir bool) error {
	p := m.parent
	if p.sb == nil {
		return fmt.Errorf("mount point missing in external bind %s (mount %d): %w", p.hostPath, p.e.GetMntId(), unix.ENOENT)
	}
	inSb := path.Join(p.e.GetRoot(), rel(m.e.GetMountpoint(), p.e.GetMountpoint()))
	dir, base := path.Split(rel(inSb, "/"))
	dfd, err := mkdirAll(b.stageFd, path.Join(p.sb.stage, dir))
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	if isDir {
		return unix.Mkdirat(dfd, base, 0o755)
	}
	fd, err := unix.Openat(dfd, base, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err == nil {
		unix.Close(fd)
	}
	return err
}

// setMountFlags sets the per-mount flags of a mount exactly.
func setMountFlags(fd int, flags uint32) error {
	attr := unix.MountAttr{Attr_clr: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV |
		unix.MOUNT_ATTR_NOEXEC | unix.MOUNT_ATTR__ATIME | unix.MOUNT_ATTR_NODIRATIME | unix.MOUNT_ATTR_NOSYMFOLLOW}
	for _, f := range []struct {
		ms   uint32
		attr uint64
	}{
		{unix.MS_RDONLY, unix.MOUNT_ATTR_RDONLY},
		{unix.MS_NOSUID, unix.MOUNT_ATTR_NOSUID},
		{unix.MS_NODEV, unix.MOUNT_ATTR_NODEV},
		{unix.MS_NOEXEC, unix.MOUNT_ATTR_NOEXEC},
		{unix.MS_NODIRATIME, unix.MOUNT_ATTR_NODIRATIME},
		{unix.MS_NOSYMFOLLOW, unix.MOUNT_ATTR_NOSYMFOLLOW},
	} {
		if flags&f.ms != 0 {
			attr.Attr_set |= f.attr
		}
	}
	switch {
	case flags&unix.MS_NOATIME != 0:
		attr.Attr_set |= unix.MOUNT_ATTR_NOATIME
	case flags&unix.MS_RELATIME != 0:
		attr.Attr_set |= unix.MOUNT_ATTR_RELATIME
	default:
		attr.Attr_set |= unix.MOUNT_ATTR_STRICTATIME
	}
	return unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr)
}

// setPropagation changes the propagation of one mount (not recursive).
// Before mount_setattr (5.12) it goes through mount(2) on the fd's magic
// link, which reaches a detached mount too.
func setPropagation(fd int, prop uintptr) error {
	err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Propagation: uint64(prop)})
	if err == unix.ENOSYS {
		err = unix.Mount("", fmt.Sprintf("/proc/thread-self/fd/%d", fd), "", prop, "")
	}
	return err
}

// enterStage puts the staging tmpfs on top of the namespace's root,
// pivots into it and detaches the old root. Tasks of the namespace whose
// root or cwd was the old root now have the staging root.
func (b *builder) enterStage() error {
	if err := unix.MoveMount(b.stageFd, "", unix.AT_FDCWD, "/", unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attach staging tmpfs: %w", err)
	}
	if err := unix.Mkdirat(b.stageFd, "old", 0o700); err != nil {
		return fmt.Errorf("staging area: %w", err)
	}
	if err := unix.Fchdir(b.stageFd); err != nil {
		return fmt.Errorf("enter staging tmpfs: %w", err)
	}
	if err := unix.PivotRoot(".", "old"); err != nil {
		unix.Unmount(".", unix.MNT_DETACH)
		return fmt.Errorf("pivot_root into staging tmpfs: %w", err)
	}
	if err := unix.Unmount("/old", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the old root: %w", err)
	}
	return nil
}

// pivot makes the new tree the namespace's root and detaches the staging
// root with everything left in it.
func (b *builder) pivot() error {
	if err := unix.Fchdir(b.root.fd); err != nil {
		return fmt.Errorf("enter the new root: %w", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root into the new tree: %w", err)
	}
	// The staging root now sits on top of the new root, at ".".
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the staging root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir to the new root: %w", err)
	}
	return nil
}
