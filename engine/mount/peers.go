package mount

import (
	"fmt"
	"slices"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/mnt"
	"github.com/gocr/gocr/engine/image"
	"github.com/gocr/gocr/engine/kernel"
	"golang.org/x/sys/unix"
)

// Peer groups are global in the kernel: when a process unshares its mount
// namespace, the copy of a shared mount is a peer of the original (the
// same shared:N in both mountinfos), and a copy made a slave there shows
// master:N of a group that lives in the other namespace. So the peer
// groups of a restore are planned over every namespace of its Set: a
// group's helper mount (see group) is made by the first namespace built
// that needs it and kept in the Set, and the members and slaves of the
// namespaces built later join that very helper. MOVE_MOUNT_SET_GROUP
// does not care which namespaces the two mounts are in (move_mount(2): it
// needs the same superblock, a helper root covering the member's root and
// a private member).

// nsMount is one mount of one namespace of the plan, for its errors.
type nsMount struct {
	ns uint32
	e  *mnt.MntEntry
}

func (m nsMount) err(op string, err error) error {
	return fmt.Errorf("mount namespace %d: %w", m.ns, &MountError{ID: m.e.GetMntId(), MountPoint: m.e.GetMountpoint(), Op: op, Err: err})
}

// peerGroup is one peer group as all the namespaces of a plan show it.
type peerGroup struct {
	id      uint32
	master  uint32 // 0, or the group it receives from (maybe outside the plan)
	ext     bool   // its members are external binds
	dev     uint32 // the superblock of its members (root_dev)
	widest  nsMount
	members []nsMount
	spans   []uint32 // the namespaces with members or slaves, in plan order
}

// describe names the group for an error: its widest member and where
// else it is.
func (g *peerGroup) describe() string {
	s := fmt.Sprintf("peer group %d (mount %d at %s in mount namespace %d", g.id, g.widest.e.GetMntId(), g.widest.e.GetMountpoint(), g.widest.ns)
	if len(g.spans) > 1 {
		s += fmt.Sprintf(", spanning %d mount namespaces", len(g.spans))
	}
	return s + ")"
}

// peerTable is the peer groups of the namespaces of a plan, masters
// before the groups they propagate to.
type peerTable struct {
	byID  map[uint32]*peerGroup
	order []*peerGroup
}

// has reports whether id is a peer group of the plan's namespaces; a
// master that is not is outside the restore (gocr's own namespace).
func (t *peerTable) has(id uint32) bool { _, ok := t.byID[id]; return ok }

// newPeerTable puts together the peer groups of namespaces nss (in that
// order) from their entries, and checks what the kernel guarantees of a
// group (one master, one superblock, no cycle), so that a damaged or
// foreign image is refused before anything is built.
func newPeerTable(nss []uint32, entries map[uint32][]*mnt.MntEntry) (*peerTable, error) {
	t := &peerTable{byID: map[uint32]*peerGroup{}}
	span := func(g *peerGroup, ns uint32) {
		if !slices.Contains(g.spans, ns) {
			g.spans = append(g.spans, ns)
		}
	}
	for _, ns := range nss {
		for _, e := range entries[ns] {
			id := e.GetSharedId()
			if id == 0 {
				continue
			}
			m := nsMount{ns, e}
			g := t.byID[id]
			if g == nil {
				g = &peerGroup{id: id, master: e.GetMasterId(), ext: e.GetExtMount(), dev: e.GetRootDev(), widest: m}
				t.byID[id] = g
				t.order = append(t.order, g)
			}
			switch {
			case e.GetMasterId() != g.master:
				return nil, m.err("plan propagation", fmt.Errorf("peer of group %d but slave of %d, not %d like mount %d of mount namespace %d", id, e.GetMasterId(), g.master, g.widest.e.GetMntId(), g.widest.ns))
			case e.GetExtMount() != g.ext:
				return nil, m.err("plan propagation", fmt.Errorf("peer group %d mixes external binds and filesystems gocr makes", id))
			case e.GetRootDev() != g.dev:
				return nil, m.err("plan propagation", fmt.Errorf("peer group %d spans different filesystems", id))
			}
			if len(e.GetRoot()) < len(g.widest.e.GetRoot()) {
				g.widest = m
			}
			g.members = append(g.members, m)
			span(g, ns)
		}
	}
	// A slave receives from a copy of itself: the same superblock.
	for _, ns := range nss {
		for _, e := range entries[ns] {
			mg := t.byID[e.GetMasterId()]
			if mg == nil {
				continue
			}
			if e.GetExtMount() != mg.ext || e.GetRootDev() != mg.dev {
				return nil, nsMount{ns, e}.err("plan propagation", fmt.Errorf("slave of peer group %d, which lives on another filesystem", mg.id))
			}
			span(mg, ns)
		}
	}
	// Masters first: a depth-first walk along master links.
	var order []*peerGroup
	state := map[*peerGroup]int{} // 1 visiting, 2 done
	var visit func(g *peerGroup) error
	visit = func(g *peerGroup) error {
		switch state[g] {
		case 1:
			return g.widest.err("plan propagation", fmt.Errorf("peer group %d is its own master through a cycle", g.id))
		case 2:
			return nil
		}
		state[g] = 1
		if mg := t.byID[g.master]; mg != nil {
			if err := visit(mg); err != nil {
				return err
			}
		}
		state[g] = 2
		order = append(order, g)
		return nil
	}
	for _, g := range t.order {
		if err := visit(g); err != nil {
			return nil, err
		}
	}
	t.order = order
	return t, nil
}

// Plan reads the mount trees of nsIDs — every mount namespace the restore
// makes, before the first RestoreNS — and plans their peer groups as a
// whole. It refuses, before anything is built, a plan the images
// contradict, and one with peer groups on a kernel without
// MOVE_MOUNT_SET_GROUP (Linux 5.15), naming the group: the tree would
// come back with its propagation lost. features gates that as in
// RestoreOptions; nil probes move_mount now.
func (s *Set) Plan(dir *image.Dir, nsIDs []uint32, features *kernel.Features) error {
	for _, id := range nsIDs {
		entries, err := ReadNS(dir, id)
		if err != nil {
			return err
		}
		if err := s.addNS(id, entries); err != nil {
			return err
		}
	}
	if s.peers == nil || len(s.peers.order) == 0 {
		return nil // no namespace of the tree's own, or no peer group
	}
	var err error
	// A group is made on a detached helper mount (its propagation set
	// with mount_setattr) and joined with MOVE_MOUNT_SET_GROUP.
	for _, name := range []string{"move-mount-set-group", "mount-setattr"} {
		if features != nil {
			err = kernel.Require(*features, name)
		} else {
			err = kernel.Check(name)
		}
		if err != nil {
			break
		}
	}
	if err != nil {
		more := ""
		if n := len(s.peers.order) - 1; n > 0 {
			more = fmt.Sprintf(" (and %d more)", n)
		}
		return fmt.Errorf("rebuild mount propagation: %s%s: %w", s.peers.order[0].describe(), more, err)
	}
	return nil
}

// addNS adds (or replaces) the entries of namespace nsID and plans the
// peer groups again.
func (s *Set) addNS(nsID uint32, entries []*mnt.MntEntry) error {
	if _, ok := s.nss[nsID]; !ok {
		s.nsOrder = append(s.nsOrder, nsID)
	}
	s.nss[nsID] = entries
	t, err := newPeerTable(s.nsOrder, s.nss)
	if err != nil {
		return err
	}
	s.peers = t
	return nil
}

// peersOf returns the peer groups RestoreNS of namespace nsID plans with:
// the set's, with nsID in (a namespace Plan did not read is added now),
// or nsID's alone without a set.
func (s *Set) peersOf(nsID uint32, entries []*mnt.MntEntry) (*peerTable, error) {
	if s == nil {
		return newPeerTable([]uint32{nsID}, map[uint32][]*mnt.MntEntry{nsID: entries})
	}
	if _, ok := s.nss[nsID]; !ok || s.peers == nil {
		if err := s.addNS(nsID, entries); err != nil {
			return nil, err
		}
	}
	return s.peers, nil
}

// helper returns a copy of the fd of group id's helper, made and set up
// by a namespace built earlier, or -1.
func (s *Set) helper(id uint32) (int, error) {
	if s == nil {
		return -1, nil
	}
	fd, ok := s.helpers[id]
	if !ok {
		return -1, nil
	}
	d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("helper of peer group %d: %w", id, err)
	}
	return d, nil
}

// keepHelper hands the set the helper of group id, set up, for the
// namespaces built later.
func (s *Set) keepHelper(id uint32, fd int) error {
	if s == nil {
		return nil
	}
	if _, ok := s.helpers[id]; ok {
		return nil
	}
	d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("keep the helper of peer group %d: %w", id, err)
	}
	s.helpers[id] = d
	return nil
}
