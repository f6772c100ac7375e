package engine

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	creds_img "github.com/checkpoint-restore/go-criu/v7/crit/images/creds"
	criu_core "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-core"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/netdev"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pidns"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pstree"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/timens"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/userns"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/utsns"
	"golang.org/x/sys/unix"

	mnt "github.com/checkpoint-restore/go-criu/v7/crit/images/mnt"
	"github.com/gocr/gocr/engine/files"
	"github.com/gocr/gocr/engine/image"
	"github.com/gocr/gocr/engine/image/gocrpb"
	"github.com/gocr/gocr/engine/kernel"
	"github.com/gocr/gocr/engine/mount"
	"github.com/gocr/gocr/engine/netlock"
	"github.com/gocr/gocr/engine/ns"
	"github.com/gocr/gocr/engine/procfs"
)

// Namespaces, the way CRIU keeps them: a task's namespace ids are in its
// TaskKobjIdsEntry (core and ids-PID.img), the dumper's own in the
// inventory's root_ids. A kind whose ids differ is the tree's own: its
// state is saved under the id (utsns-ID.img, ...) and restore creates a
// fresh namespace of that kind for the tree. gocr uses the namespace's
// nsfs inode as its id.

// restorableNS are the kinds gocr creates afresh on restore, in the order
// their state is restored.
var restorableNS = []string{"user", "pid", "mnt", "uts", "ipc", "net"}

// refusedNS are kinds gocr does not restore yet. Time namespaces are
// restored but not by kind like the others: the stub cannot be born in a
// fresh one (see ns/time.go and dumpTimeNamespace).
var refusedNS = []string{"cgroup"}

// dumpNamespaces finds the task's own namespaces, refuses what gocr cannot
// restore, works out the pids the task sees, and writes the namespaces'
// images. Nothing in the task is changed.
func (d *dumper) dumpNamespaces() error {
	pid := d.o.Pid
	theirs, err := procfs.Namespaces(pid)
	if err != nil {
		return err
	}
	mine, err := procfs.Namespaces(os.Getpid())
	if err != nil {
		return err
	}
	d.nsIDs, d.rootNsIDs = theirs, mine
	d.files.Mqueues = ns.NewMqueues(nsID(mine, "ipc"))
	own := map[string]bool{}
	for kind, ino := range theirs {
		if ino != mine[kind] {
			own[kind] = true
		}
	}
	for _, kind := range refusedNS {
		if own[kind] {
			return fmt.Errorf("pid %d is in a %s namespace of its own (%d): %s namespaces are not supported yet", pid, kind, theirs[kind], kind)
		}
	}
	// Every process of the tree in the root's namespaces, but for mount
	// namespaces, which may nest (see dumpMountNamespaces).
	d.procs[0].mntNS = theirs["mnt"]
	for _, p := range d.procs[1:] {
		if p.zombie {
			p.mntNS = theirs["mnt"] // a zombie has no namespaces left
			continue
		}
		ids, err := procfs.Namespaces(p.pid)
		if err != nil {
			return fmt.Errorf("pid %d: %w", p.pid, err)
		}
		p.mntNS = ids["mnt"]
		for _, kind := range slices.Sorted(maps.Keys(ids)) {
			if kind != "mnt" && !strings.HasPrefix(kind, "time") && ids[kind] != theirs[kind] {
				return fmt.Errorf("pid %d is in another %s namespace (%d) than the tree's root %d (%d): nested namespaces are not supported yet",
					p.pid, kind, ids[kind], pid, theirs[kind])
			}
		}
	}
	if theirs["pid_for_children"] != theirs["pid"] {
		return fmt.Errorf("pid %d unshared a pid namespace its children would be born in (pid_for_children %d, its own %d): not supported",
			pid, theirs["pid_for_children"], theirs["pid"])
	}
	if err := d.dumpTimeNamespace(); err != nil {
		return err
	}

	if own["user"] {
		e, err := ns.DumpUser(pid)
		if err != nil {
			return fmt.Errorf("dump user namespace: %w", err)
		}
		if err := ns.CheckUser(e); err != nil {
			return fmt.Errorf("user namespace %d of pid %d: %w", theirs["user"], pid, err)
		}
		if err := d.dir.WriteOne(image.Userns, image.UsernsFile(nsID(theirs, "user")), e); err != nil {
			return err
		}
		d.userns = e
	}

	var tids []int
	for _, p := range d.procs {
		if p.zombie {
			tids = append(tids, p.pid)
		}
		tids = append(tids, p.tids...)
	}
	d.vtid = map[int]int{}
	for _, tid := range tids {
		d.vtid[tid] = tid
	}
	if own["pid"] {
		if err := ns.CheckPidNS(pid); err != nil {
			return err
		}
		for _, tid := range tids {
			st, err := procfs.Status(tid)
			if err != nil {
				return fmt.Errorf("thread %d: %w", tid, err)
			}
			if len(st.NSpid) != 2 || st.NSpid[0] != tid {
				return fmt.Errorf("thread %d: NSpid %v: only a pid namespace right below gocr's is supported", tid, st.NSpid)
			}
			d.vtid[tid] = st.NSpid[1]
		}
		if err := d.dir.WriteOne(image.Pidns, image.PidnsFile(nsID(theirs, "pid")), &pidns.PidnsEntry{}); err != nil {
			return err
		}
	}
	d.vpid = d.vtid[pid]

	if err := d.dumpMountNamespaces(); err != nil {
		return err
	}
	if own["uts"] {
		e, err := ns.DumpUTS(pid)
		if err != nil {
			return fmt.Errorf("dump uts namespace: %w", err)
		}
		if err := d.dir.WriteOne(image.Utsns, image.UtsnsFile(nsID(theirs, "uts")), e); err != nil {
			return err
		}
	}
	if own["ipc"] {
		var live []int
		for _, p := range d.procs {
			if !p.zombie {
				live = append(live, p.pid)
			}
		}
		if err := ns.DumpIPC(pid, d.dir, nsID(theirs, "ipc"), d.idMap(), d.files.Mqueues, live); err != nil {
			return fmt.Errorf("dump ipc namespace %d: %w", theirs["ipc"], err)
		}
	}
	if own["net"] {
		d.ownNet = true
		devs, conf, err := ns.DumpNet(pid)
		if err != nil {
			return fmt.Errorf("dump net namespace: %w", err)
		}
		tables, err := netlock.ForeignTables(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			return fmt.Errorf("dump net namespace: %w", err)
		}
		if len(tables) > 0 {
			return fmt.Errorf("dump net namespace: nftables tables %v: firewall rules are not supported yet", tables)
		}
		id := nsID(theirs, "net")
		w, err := d.dir.Writer(image.Netdev, image.NetdevFile(id))
		if err != nil {
			return err
		}
		for _, dev := range devs {
			if err := w.Write(dev); err != nil {
				w.Abort()
				return err
			}
		}
		if err := w.Close(); err != nil {
			return err
		}
		if err := d.dir.WriteOne(image.Netns, image.NetnsFile(id), conf); err != nil {
			return err
		}
	}
	return nil
}

// dumpTimeNamespace finds the time namespace the tree has of its own, if
// any: the one its root is in, or the one the root made for its children
// (see ns/time.go), gives every process its time namespace id and saves
// the namespace's clocks.
func (d *dumper) dumpTimeNamespace() error {
	if _, ok := d.nsIDs["time"]; !ok {
		return nil // a kernel without time namespaces
	}
	var tasks []ns.TimeTask
	for _, p := range d.procs {
		if p.zombie {
			continue
		}
		t, err := ns.ReadTimeTask(p.pid, p.tids)
		if err != nil {
			return err
		}
		p.timeNS = t.Time
		tasks = append(tasks, t)
	}
	l, err := ns.TreeTime(tasks, d.rootNsIDs["time"])
	if err != nil {
		return err
	}
	for _, p := range d.procs {
		if p.zombie {
			// Gone from every namespace; it was born in the one its
			// parent's children are.
			p.timeNS = d.nsIDs["time"]
			if l.ID != 0 {
				p.timeNS = l.ID
			}
		}
	}
	if l.ID == 0 {
		return nil
	}
	// The root's time_for_children is the namespace either way.
	inside, ref, err := ns.DumpTime(d.o.Pid)
	if err != nil {
		return fmt.Errorf("dump time namespace %d: %w", l.ID, err)
	}
	if err := d.dir.WriteOne(image.Timens, image.TimensFile(uint32(l.ID)), inside); err != nil {
		return err
	}
	return d.dir.WriteOne(image.Timens, image.GocrTimensRefFile, ref)
}

// idMap translates ids between gocr's user namespace and the tree's.
func (d *dumper) idMap() ns.IDMap {
	if d.userns == nil {
		return ns.IDMap{}
	}
	return ns.IDMap{Uid: d.userns.UidMap, Gid: d.userns.GidMap}
}

// dumpMountNamespaces saves the mount tree of every mount namespace of the
// tree but gocr's own (in the h flavor the root stays in the host's, and
// only namespaces its descendants made are the tree's), each read through
// the first process found in it.
func (d *dumper) dumpMountNamespaces() error {
	ext, err := parseExternalMounts(d.o.External, false)
	if err != nil {
		return err
	}
	done := map[uint64]bool{d.rootNsIDs["mnt"]: true}
	// --external mnt[PATH]:KEY names a mount point of the root's mount
	// namespace, as criu's does: a mount at the same path in a namespace
	// nested in it is the tree's own. (A root in gocr's namespace, whose
	// mounts are not dumped, leaves the paths to the nested ones.)
	var rootNS uint64
	for _, p := range d.procs {
		if p.pid == d.o.Pid {
			rootNS = p.mntNS
		}
	}
	for _, p := range d.procs {
		if p.zombie || done[p.mntNS] {
			continue
		}
		done[p.mntNS] = true
		nsExt := ext
		if rootNS != d.rootNsIDs["mnt"] && p.mntNS != rootNS {
			nsExt = nil
		}
		if d.o.Root != "" && p.pid == d.o.Pid {
			// --root: the root mount of the tree's namespace is the
			// caller's directory, given again at restore.
			nsExt = maps.Clone(ext)
			if _, given := nsExt["/"]; !given {
				nsExt["/"] = mount.RootKey
			}
		}
		if err := mount.DumpNS(p.pid, d.dir, uint32(p.mntNS), mount.DumpOptions{External: nsExt}); err != nil {
			return err
		}
	}
	return nil
}

// nsID is the image id of a namespace: its nsfs inode.
func nsID(ids map[string]uint64, kind string) uint32 { return uint32(ids[kind]) }

// vpidOf translates a pid the host sees (a process group or session of
// the dumped task) into the pid the task sees: its own pid inside its pid
// namespace, 0 for a process outside it.
func (d *dumper) vpidOf(hostPid int) uint32 {
	if v, ok := d.vtid[hostPid]; ok {
		return uint32(v)
	}
	if d.vpid != d.o.Pid {
		return 0 // outside the task's own pid namespace
	}
	return uint32(hostPid)
}

// writeHostPstree writes gocr-pstree-host.img: the tree as gocr's pid
// namespace sees it, in the order of pstree.img.
func (d *dumper) writeHostPstree() error {
	if d.vpid == d.o.Pid {
		return nil
	}
	w, err := d.dir.Writer(image.Pstree, image.HostPstreeFile)
	if err != nil {
		return err
	}
	for _, p := range d.procs {
		e := &pstree.PstreeEntry{Pid: ptr(uint32(p.pid)), Ppid: ptr(uint32(p.ppid)), Pgid: ptr(uint32(p.stat.Pgrp)), Sid: ptr(uint32(p.stat.Session))}
		tids := p.tids
		if p.zombie {
			tids = []int{p.pid}
		}
		for _, tid := range tids {
			e.Threads = append(e.Threads, uint32(tid))
		}
		if err := w.Write(e); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Close()
}

// rootIDs is the inventory's root_ids: the dumper's own namespaces. The
// per-task object ids in it name no object of the tree.
func (d *dumper) rootIDs() *criu_core.TaskKobjIdsEntry {
	ids := &criu_core.TaskKobjIdsEntry{VmId: ptr(uint32(0)), FilesId: ptr(uint32(0)), FsId: ptr(uint32(0)), SighandId: ptr(uint32(0))}
	setNsIDs(ids, d.rootNsIDs)
	return ids
}

// nsImages is what restore knows of the tree's own namespaces.
type nsImages struct {
	ids      map[string]uint32 // kind → id, for every kind new on restore
	user     *userns.UsernsEntry
	uts      *utsns.UtsnsEntry
	ipc      *ns.IPCImages
	mqFiles  map[uint32]*gocrpb.MqueueFileEntry // open message queues, by file id
	net      []*netdev.NetDeviceEntry
	netConf  *netdev.NetnsEntry // netns.img: the sysctls (nil in images without one)
	hostTids map[int]int        // image tid → tid outside; absent if unknown
	time     *timeImages        // nil: no time namespace of its own
}

// timeImages is the tree's time namespace: how the tree uses it, its
// clocks at dump time and the dumper's at the same instant (nil in images
// gocr did not write).
type timeImages struct {
	layout      ns.TimeLayout
	inside, ref *timens.TimensEntry
}

// kinds lists the namespace kinds the restore creates, for the clone flags.
func (n *nsImages) kinds() []string {
	var out []string
	for _, k := range restorableNS {
		if _, ok := n.ids[k]; ok {
			out = append(out, k)
		}
	}
	return out
}

func (n *nsImages) has(kind string) bool { _, ok := n.ids[kind]; return ok }

// idMap translates ids between gocr's user namespace and the tree's.
func (n *nsImages) idMap() ns.IDMap {
	if n.user == nil {
		return ns.IDMap{}
	}
	return ns.IDMap{Uid: n.user.UidMap, Gid: n.user.GidMap}
}

// readNamespaces finds the kinds of namespace the tree had of its own (its
// ids differ from the inventory's root_ids) and reads their images.
func readNamespaces(dir *image.Dir, img *restoreImages, root, task *criu_core.TaskKobjIdsEntry) (*nsImages, error) {
	n := &nsImages{ids: map[string]uint32{}, hostTids: map[int]int{}, mqFiles: map[uint32]*gocrpb.MqueueFileEntry{}}
	if root == nil || task == nil {
		return n, nil
	}
	get := func(ids *criu_core.TaskKobjIdsEntry, kind string) *uint32 {
		switch kind {
		case "pid":
			return ids.PidNsId
		case "mnt":
			return ids.MntNsId
		case "uts":
			return ids.UtsNsId
		case "ipc":
			return ids.IpcNsId
		case "net":
			return ids.NetNsId
		case "user":
			return ids.UserNsId
		case "cgroup":
			return ids.CgroupNsId
		case "time":
			return ids.TimeNsId
		}
		return nil
	}
	for _, kind := range append(slices.Clone(restorableNS), refusedNS...) {
		r, t := get(root, kind), get(task, kind)
		if r == nil || t == nil || *r == *t {
			continue
		}
		if slices.Contains(refusedNS, kind) {
			return nil, fmt.Errorf("%s: the tree has a %s namespace of its own (id %d): %s namespaces are not supported yet", image.InventoryFile, kind, *t, kind)
		}
		n.ids[kind] = *t
	}
	var err error
	if n.time, err = readTimeNamespace(dir, img, root); err != nil {
		return nil, err
	}
	if id, ok := n.ids["user"]; ok {
		if n.user, err = image.ReadOne[userns.UsernsEntry](dir, image.Userns, image.UsernsFile(id)); err != nil {
			return nil, err
		}
		if err := ns.CheckUser(n.user); err != nil {
			return nil, fmt.Errorf("%s: %w", image.UsernsFile(id), err)
		}
	}
	if id, ok := n.ids["uts"]; ok {
		if n.uts, err = image.ReadOne[utsns.UtsnsEntry](dir, image.Utsns, image.UtsnsFile(id)); err != nil {
			return nil, err
		}
	}
	if id, ok := n.ids["ipc"]; ok {
		if n.ipc, err = ns.ReadIPC(dir, id); err != nil {
			return nil, err
		}
	}
	if n.mqFiles, err = ns.ReadMqueueFiles(dir, n.ids["ipc"], root.GetIpcNsId()); err != nil {
		return nil, err
	}
	for id, f := range n.mqFiles {
		if f.Queue != nil && !n.ipc.HasQueue(f.GetQueue()) {
			return nil, fmt.Errorf("%s: file %d: message queue %d is not in %s", image.GocrMqueueFilesFile, id, f.GetQueue(), image.GocrMqueueFile(n.ids["ipc"]))
		}
	}
	if id, ok := n.ids["net"]; ok {
		if n.net, err = image.ReadAll[netdev.NetDeviceEntry](dir, image.Netdev, image.NetdevFile(id)); err != nil {
			return nil, err
		}
		for i, dev := range n.net {
			if dev.GetType() != netdev.NdType_LOOPBACK {
				return nil, fmt.Errorf("%s: [%d]: device %s of type %s: only the loopback device is supported so far", image.NetdevFile(id), i, dev.GetName(), dev.GetType())
			}
		}
		if dir.Exists(image.NetnsFile(id)) {
			if n.netConf, err = image.ReadOne[netdev.NetnsEntry](dir, image.Netns, image.NetnsFile(id)); err != nil {
				return nil, err
			}
		}
	}
	if id, ok := n.ids["mnt"]; ok {
		if _, err := mount.ReadNS(dir, id); err != nil {
			return nil, err
		}
	}
	if n.has("pid") {
		if root := img.procs[0]; root.pid != 1 {
			return nil, fmt.Errorf("%s: pid %d: the root of a tree with a pid namespace of its own must be its init, pid 1", image.PstreeFile, root.pid)
		}
		if dir.Exists(image.HostPstreeFile) {
			host, err := image.ReadAll[pstree.PstreeEntry](dir, image.Pstree, image.HostPstreeFile)
			if err != nil {
				return nil, err
			}
			if len(host) != len(img.procs) {
				return nil, fmt.Errorf("%s: %d processes, %s has %d", image.HostPstreeFile, len(host), image.PstreeFile, len(img.procs))
			}
			for i, h := range host {
				ht, tree := h.GetThreads(), img.procs[i].tree
				if len(ht) != len(tree.GetThreads()) || h.GetPid() == 0 {
					return nil, fmt.Errorf("%s: [%d]: pid %d with %d threads does not match %s's %d threads", image.HostPstreeFile, i, h.GetPid(), len(ht), image.PstreeFile, len(tree.GetThreads()))
				}
				for j, t := range tree.GetThreads() {
					n.hostTids[int(t)] = int(ht[j])
				}
			}
		}
	}
	return n, nil
}

// readTimeNamespace finds the time namespace the tree had of its own from
// its processes' ids (see ns.TreeTimeFromIDs) and reads its images.
func readTimeNamespace(dir *image.Dir, img *restoreImages, root *criu_core.TaskKobjIdsEntry) (*timeImages, error) {
	if root.TimeNsId == nil {
		return nil, nil // dumped where there are no time namespaces
	}
	var tasks []ns.TimeTask
	for _, p := range img.procs {
		if !p.zombie {
			tasks = append(tasks, ns.TimeTask{Pid: p.pid, Time: uint64(p.timeNS)})
		}
	}
	l, err := ns.TreeTimeFromIDs(tasks, uint64(root.GetTimeNsId()))
	if err != nil {
		return nil, fmt.Errorf("ids.time_ns_id: %w", err)
	}
	if l.ID == 0 {
		return nil, nil
	}
	if _, err := os.Stat("/proc/self/ns/time"); err != nil {
		return nil, fmt.Errorf("the tree has a time namespace of its own (id %d): %w", l.ID,
			&kernel.NotSupportedError{Feature: "time-ns", Since: "5.6", Detail: err.Error()})
	}
	t := &timeImages{layout: l}
	name := image.TimensFile(uint32(l.ID))
	if t.inside, err = image.ReadOne[timens.TimensEntry](dir, image.Timens, name); err != nil {
		return nil, err
	}
	if err := ns.CheckTime(t.inside); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if dir.Exists(image.GocrTimensRefFile) {
		if t.ref, err = image.ReadOne[timens.TimensEntry](dir, image.Timens, image.GocrTimensRefFile); err != nil {
			return nil, err
		}
		if err := ns.CheckTime(t.ref); err != nil {
			return nil, fmt.Errorf("%s: %w", image.GocrTimensRefFile, err)
		}
	}
	return t, nil
}

// makeTimeNamespace gives the tree its time namespace (see ns/time.go):
// the root's stub unshares one and gocr sets its offsets while no process
// has been in it; then the stub joins it itself (setns, which a time
// namespace allows only to a single-threaded process: the stub has no
// thread yet) when the whole tree was in it, or leaves it to the children
// it forks next when the root had made it for them. A tree all inside
// gets its clocks carried on from the dumped values, as CRIU does; one
// whose root stays outside keeps the distance between the root's clocks
// and its children's.
func (r *restorer) makeTimeNamespace() error {
	tn := r.img.ns.time
	if tn == nil {
		return nil
	}
	root, id := r.procs[0], tn.layout.ID
	if _, err := root.t.Syscall(unix.SYS_UNSHARE, unix.CLONE_NEWTIME); err != nil {
		return fmt.Errorf("unshare time namespace %d: %w", id, err)
	}
	ref := tn.ref
	if tn.layout.RootInside {
		ref = nil
	}
	off, err := ns.RestoreTimeOffsets(tn.inside, ref)
	if err != nil {
		return fmt.Errorf("time namespace %d: %w", id, err)
	}
	if err := ns.WriteTimeOffsets(root.pid, off); err != nil {
		return fmt.Errorf("time namespace %d: %w", id, err)
	}
	r.log.Debug("time namespace made", "id", id, "root inside", tn.layout.RootInside, "monotonic", off.Monotonic, "boottime", off.Boottime)
	if !tn.layout.RootInside {
		return nil
	}
	nsPath := fmt.Sprintf("/proc/%d/ns/time_for_children", root.pid)
	fd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("time namespace %d: open %s: %w", id, nsPath, err)
	}
	got, err := r.pass.Send(root.t, r.sock, fdPassOff, []int{fd})
	unix.Close(fd)
	if err != nil {
		return fmt.Errorf("time namespace %d: %w", id, err)
	}
	_, err = root.t.Syscall(unix.SYS_SETNS, uint64(got[0]), unix.CLONE_NEWTIME)
	if _, cerr := root.t.Syscall(unix.SYS_CLOSE, uint64(got[0])); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("join time namespace %d: %w", id, err)
	}
	return nil
}

// checkMountNamespaces gives every process its mount namespace (a zombie
// its parent's) and checks the image of every namespace the restore
// makes: each but gocr's own (the h flavor's root stays in it), listed
// in img.mntNSs.
func checkMountNamespaces(dir *image.Dir, img *restoreImages, gocrNS uint32) error {
	for _, p := range img.procs {
		if p.zombie || p.mntNS == 0 {
			if parent := img.byPid[int(p.tree.GetPpid())]; parent != nil {
				p.mntNS = parent.mntNS
			}
			continue
		}
		if p.mntNS == gocrNS || slices.Contains(img.mntNSs, p.mntNS) {
			continue
		}
		if _, err := mount.ReadNS(dir, p.mntNS); err != nil {
			return fmt.Errorf("pid %d: %w", p.pid, err)
		}
		img.mntNSs = append(img.mntNSs, p.mntNS)
	}
	return nil
}

// checkRestoreRoot refuses a --root the images do not expect, and the
// lack of one they do (see mount.RootKey): the root mount of the root
// process's namespace tells.
func checkRestoreRoot(dir *image.Dir, img *restoreImages, root string) error {
	var entries []*mnt.MntEntry
	if id := img.procs[0].mntNS; slices.Contains(img.mntNSs, id) {
		var err error
		if entries, err = mount.ReadNS(dir, id); err != nil {
			return err
		}
	}
	return mount.CheckRestoreRoot(entries, root)
}

// enterMountNS puts a stub just forked into its mount namespace: the one
// its namespace's first process made (setns), or a new one it makes and
// gocr fills (unshare, then mount.RestoreNS: the namespace's tree replaces
// the copy of its parent's, whose filesystems it shares).
func (p *procRestorer) enterMountNS() error {
	r, id := p.restorer, p.img.mntNS
	if first := r.mntNS[id]; first != nil {
		nsPath := fmt.Sprintf("/proc/%d/ns/mnt", first.pid)
		fd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("mount namespace %d: %w", id, err)
		}
		got, err := r.pass.Send(p.t, r.sock, fdPassOff, []int{fd})
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("mount namespace %d: %w", id, err)
		}
		_, err = p.t.Syscall(unix.SYS_SETNS, uint64(got[0]), unix.CLONE_NEWNS)
		if _, cerr := p.t.Syscall(unix.SYS_CLOSE, uint64(got[0])); cerr != nil && err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("join mount namespace %d of pid %d: %w", id, first.vpid, err)
		}
		return nil
	}
	if _, err := p.t.Syscall(unix.SYS_UNSHARE, unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare a mount namespace: %w", err)
	}
	r.mntNS[id] = p
	return mount.RestoreNSOf(p.pid, r.dir, id, mount.RestoreOptions{NsPid: r.procs[0].pid, Set: r.mounts, External: r.external})
}

// restoreNamespaces brings the stub's fresh namespaces to the image's
// state: the mount tree first (nothing is opened before it is there),
// then host and domain name, ipc limits and network devices.
func (r *restorer) restoreNamespaces() error {
	n, pid := r.img.ns, r.procs[0].pid
	r.mntNS[r.procs[0].img.mntNS] = r.procs[0]
	if id, ok := n.ids["mnt"]; ok {
		if err := mount.RestoreNSOf(pid, r.dir, id, mount.RestoreOptions{NsPid: pid, Set: r.mounts, External: r.external}); err != nil {
			return err
		}
	}
	if n.uts != nil {
		if err := ns.RestoreUTS(pid, n.uts); err != nil {
			return fmt.Errorf("restore uts namespace %d: %w", n.ids["uts"], err)
		}
	}
	if n.ipc != nil {
		res, err := ns.RestoreIPC(pid, r.dir, n.ipc, n.idMap(), n.mqFiles)
		if err != nil {
			return fmt.Errorf("restore ipc namespace %d: %w", n.ids["ipc"], err)
		}
		r.ipc, r.fr.MqueueFds = res, res.MqueueFiles
	}
	if n.has("net") && r.o.JoinNetNS == "" {
		if err := ns.RestoreNet(pid, n.net, n.netConf); err != nil {
			return fmt.Errorf("restore net namespace %d: %w", n.ids["net"], err)
		}
	}
	return nil
}

// credsInside translates credentials read from /proc (gocr's view of ids)
// into the ids the task has in its own user namespace, which is what the
// image holds and what the restored task sets from inside.
func (d *dumper) credsInside(c *creds_img.CredsEntry) {
	if d.userns == nil {
		return
	}
	u, g := d.userns.UidMap, d.userns.GidMap
	for _, id := range []*uint32{c.Uid, c.Euid, c.Suid, c.Fsuid} {
		*id = ns.Inside(u, *id)
	}
	for _, id := range []*uint32{c.Gid, c.Egid, c.Sgid, c.Fsgid} {
		*id = ns.Inside(g, *id)
	}
	for i := range c.Groups {
		c.Groups[i] = ns.Inside(g, c.Groups[i])
	}
}

// idsInside turns a file owner's ids into the tree's own user namespace,
// as images keep them; nil when the tree shares gocr's.
func (d *dumper) idsInside() files.IDMap {
	if d.userns == nil {
		return nil
	}
	u, g := d.userns.UidMap, d.userns.GidMap
	return func(uid, gid uint32) (uint32, uint32, error) {
		return ns.Inside(u, uid), ns.Inside(g, gid), nil
	}
}

// hostIDs turns a file owner's ids of the tree's user namespace back into
// gocr's; nil when the tree shares gocr's.
func (n *nsImages) hostIDs() files.IDMap {
	if n == nil || n.user == nil {
		return nil
	}
	u, g := n.user.UidMap, n.user.GidMap
	return func(uid, gid uint32) (uint32, uint32, error) {
		hu, ok1 := ns.Outside(u, uid)
		hg, ok2 := ns.Outside(g, gid)
		if !ok1 || !ok2 {
			return 0, 0, fmt.Errorf("owner %d:%d has no ids outside the user namespace", uid, gid)
		}
		return hu, hg, nil
	}
}
