// Package mount saves and rebuilds the mount tree of one mount namespace,
// in CRIU's image format (mountpoints-<ns id>.img of MntEntry messages, and
// tmpfs-dev-<dev>.tar.gz.img for tmpfs contents), dump and restore side by
// side, the way CRIU keeps mount.c.
//
// # What a mount becomes
//
// DumpNS classifies every mount of the namespace, in this order:
//
//   - External, given by the caller: DumpOptions.External names it by mount
//     point with a key, as criu's `--external mnt[PATH]:KEY`; restore maps
//     the key to a host path (RestoreOptions.External, criu's
//     `--external mnt[KEY]:PATH`) and bind-mounts that path.
//   - External, found automatically: a mount whose superblock is also
//     mounted in gocr's own mount namespace, at a path that shows the very
//     same directory or file (same device and inode, not overmounted), is
//     recorded as a bind of that host path: ext_mount is set and ext_key is
//     "gocr-host:" followed by the path. This is what a container's bind
//     mounts of host files and directories are (zdtm's ns flavor binds the
//     test directory, the workload binary and /dev/null...), and what every
//     inherited mount of a namespace made with a plain unshare is. Restore
//     binds the same path again: the files are shared with the host, as they
//     were.
//   - A fresh instance of a virtual filesystem: tmpfs (contents saved),
//     proc, sysfs, devpts, mqueue, cgroup2. Several mounts of one
//     superblock are restored as one new superblock and binds of it: the
//     mount with the widest root creates it, the others bind their roots.
//     proc, sysfs, mqueue and cgroup2 are made for the pid, net, ipc and
//     cgroup namespaces of the task named in RestoreOptions.NsPid.
//   - Anything else, typically a disk filesystem mounted only inside the
//     namespace, is refused at dump with an error naming the mount: there
//     is no way to bring it back faithfully unless the caller says where
//     it lives (External).
//
// When the namespace is gocr's own (the h flavor's root namespace), every
// mount is external: such a namespace is the host's and must not be
// rebuilt; IsOwnNamespace tells the caller.
//
// # Propagation
//
// shared:N and master:N are kept as they are (shared_id, master_id);
// unbindable is kept as MS_UNBINDABLE in flags. Restore builds the whole
// tree private, then rebuilds every peer group with MOVE_MOUNT_SET_GROUP
// (Linux 5.15) from a helper mount of the superblock's root, masters before
// their slaves, and finally marks unbindable mounts. Peer groups are
// global in the kernel: a group made before a process unshared its
// namespace has members in both, and a slave in one namespace may receive
// from a group of another. So the groups of all the namespaces of one
// restore (a Set) are planned together (Set.Plan, before anything is
// built, which also refuses peer groups on a kernel without
// MOVE_MOUNT_SET_GROUP, naming the group): a group's helper is made by the
// first namespace built that needs it and kept in the Set, and the
// namespaces built later join their members and slaves to that same
// helper. Peer groups that reached into gocr's own namespace are rebuilt
// inside the restore's namespaces only: relinking them to the host would
// let the workload's mounts leak into the host. A mount that was the slave
// of a host peer group (one in no namespace of the restore) and is
// restored as an external bind becomes the slave of the host mount it is
// bound from again (if that host mount is shared).
//
// # Threads
//
// Both sides do their namespace work on a throwaway OS thread (locked,
// CLONE_FS unshared, setns into the target namespaces, never unlocked), so
// the rest of gocr never runs in a namespace it did not expect. Dump never
// changes the victim: it reads mountinfo, opens mounts with O_PATH and
// reads tmpfs contents through a private, detached clone of the mount
// (open_tree), which also shows the files hidden under submounts. A tmpfs
// hidden under another mount is cloned by a helper process, driven by
// injected calls, in a private copy of the namespace made from inside the
// user namespace that owns it (digout.go).
package mount
