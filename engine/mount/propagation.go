package mount

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// group is one peer group (shared:N) as one namespace rebuilds it, with a
// helper mount: a private clone of the widest root the group's
// superblock offers, made shared (and, for a group that is also a slave,
// the slave of its master's helper first); every member then copies the
// helper's sharing with MOVE_MOUNT_SET_GROUP, which requires the same
// superblock, a helper root covering the member's root and a private
// member. A group that spans namespaces (see peers.go) has one helper,
// made by the first of them built and taken from the Set by the others;
// a namespace also needs the groups its slaves receive from, and their
// masters, members here or not.
type group struct {
	id       uint32
	members  []*rmount   // this namespace's
	at       *rmount     // a member or slave here, for errors
	sb       *superblock // the group's filesystem here; nil for external binds
	hostPath string      // external binds: the host path of the widest member
	master   uint32      // 0, or the peer group this group receives from
	helper   int         // detached helper mount, -1 before
	made     bool        // helper made here, to set up; else the Set's, ready
}

// planGroups picks the peer groups this namespace needs from the plan of
// all (t), masters before their slaves.
func (b *builder) planGroups(t *peerTable) error {
	need := map[uint32]*group{}
	var add func(id uint32, at *rmount) (*group, error)
	add = func(id uint32, at *rmount) (*group, error) {
		pg := t.byID[id]
		if pg == nil {
			return nil, nil // outside the restore: gocr's own namespace
		}
		if g := need[id]; g != nil {
			return g, nil
		}
		g := &group{id: id, at: at, sb: at.sb, master: pg.master, helper: -1}
		need[id] = g
		if pg.ext {
			p, err := hostPathOf(pg.widest.e, b.opts.External)
			if err != nil {
				return nil, at.err("plan propagation", fmt.Errorf("peer group %d, widest at mount %d of mount namespace %d: %w", id, pg.widest.e.GetMntId(), pg.widest.ns, err))
			}
			g.hostPath = p
		}
		if _, err := add(pg.master, at); err != nil {
			return nil, err
		}
		return g, nil
	}
	for _, m := range b.mounts {
		if id := m.e.GetSharedId(); id != 0 {
			g, err := add(id, m)
			if err != nil {
				return err
			}
			g.members = append(g.members, m)
			if m.sb == nil && !under(m.hostPath, g.hostPath) {
				return m.err("plan propagation", fmt.Errorf("peer group %d: host path %s is not under %s, the widest root of the group", id, m.hostPath, g.hostPath))
			}
		} else if id := m.e.GetMasterId(); id != 0 {
			if _, err := add(id, m); err != nil {
				return err
			}
		}
	}
	for _, pg := range t.order {
		if g := need[pg.id]; g != nil {
			b.groups = append(b.groups, g)
		}
	}
	return nil
}

// hostHelpers clones, in gocr's namespace, the helpers of groups made of
// external binds that no namespace built earlier made. A group whose
// master is outside the restore gets a helper that is the slave of the
// host mount's group.
func (b *builder) hostHelpers() error {
	for _, g := range b.groups {
		if g.sb != nil {
			continue
		}
		if ok, err := b.setHelper(g); ok || err != nil {
			if err != nil {
				return err
			}
			continue
		}
		fd, err := unix.OpenTree(unix.AT_FDCWD, g.hostPath, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			return g.at.err("clone host path "+g.hostPath+" for peer group "+fmt.Sprint(g.id), err)
		}
		g.helper, g.made = fd, true
		prop := uintptr(unix.MS_PRIVATE)
		if g.master != 0 && !b.shared[g.master] {
			prop = unix.MS_SLAVE
		}
		if err := setPropagation(fd, prop); err != nil {
			return g.at.err("detach helper of peer group "+fmt.Sprint(g.id)+" from the host", err)
		}
	}
	return nil
}

// makeHelpers clones the helpers of groups on fresh superblocks from the
// staging area, before it goes away with the old root, unless a
// namespace built earlier made them.
func (b *builder) makeHelpers() error {
	for _, g := range b.groups {
		if g.sb == nil {
			continue
		}
		if ok, err := b.setHelper(g); ok || err != nil {
			if err != nil {
				return err
			}
			continue
		}
		fd, err := unix.OpenTree(b.stageFd, g.sb.stage, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			return g.at.err("clone helper of peer group "+fmt.Sprint(g.id), err)
		}
		g.helper, g.made = fd, true
	}
	return nil
}

// setHelper gives g the helper a namespace built earlier made, if any.
func (b *builder) setHelper(g *group) (bool, error) {
	fd, err := b.opts.Set.helper(g.id)
	if err != nil || fd < 0 {
		return false, err
	}
	g.helper = fd
	return true, nil
}

// setGroup makes to share what from shares: its peers and its master.
func setGroup(from, to int) error {
	return unix.MoveMount(from, "", to, "", unix.MOVE_MOUNT_SET_GROUP|unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
}

// propagate rebuilds peer groups, slaves and unbindable mounts on the
// finished tree, and hands the helpers it made to the Set.
func (b *builder) propagate() error {
	byID := map[uint32]*group{}
	for _, g := range b.groups {
		byID[g.id] = g
		if g.made {
			if err := setUpHelper(g, byID[g.master]); err != nil {
				return err
			}
		} else if err := sameSuperblock(g); err != nil {
			return err
		}
		for _, m := range g.members {
			if err := setGroup(g.helper, m.fd); err != nil {
				return m.err(fmt.Sprintf("join peer group %d (MOVE_MOUNT_SET_GROUP)", g.id), err)
			}
		}
	}
	for _, m := range b.mounts {
		id := m.e.GetMasterId()
		if id == 0 || m.e.GetSharedId() != 0 {
			continue
		}
		if mg := byID[id]; mg != nil {
			if err := setGroup(mg.helper, m.fd); err != nil {
				return m.err(fmt.Sprintf("join peer group %d to become its slave (MOVE_MOUNT_SET_GROUP)", id), err)
			}
			if err := setPropagation(m.fd, unix.MS_SLAVE); err != nil {
				return m.err(fmt.Sprintf("become a slave of peer group %d", id), err)
			}
		}
	}
	for _, m := range b.mounts {
		if m.e.GetFlags()&unix.MS_UNBINDABLE != 0 {
			if err := setPropagation(m.fd, unix.MS_UNBINDABLE); err != nil {
				return m.err("make unbindable", err)
			}
		}
	}
	for _, g := range b.groups {
		if g.made {
			if err := b.opts.Set.keepHelper(g.id, g.helper); err != nil {
				return g.at.err("rebuild mount propagation", err)
			}
		}
	}
	return nil
}

// setUpHelper makes a new helper the peer group it stands for: the slave
// of its master's helper first (mg, nil when the master is outside the
// restore or there is none), then shared.
func setUpHelper(g, mg *group) error {
	if mg != nil {
		if err := setGroup(mg.helper, g.helper); err != nil {
			return g.at.err(fmt.Sprintf("make peer group %d a slave of %d (MOVE_MOUNT_SET_GROUP)", g.id, g.master), err)
		}
		if err := setPropagation(g.helper, unix.MS_SLAVE); err != nil {
			return g.at.err(fmt.Sprintf("make peer group %d a slave", g.id), err)
		}
	}
	if err := setPropagation(g.helper, unix.MS_SHARED); err != nil {
		return g.at.err(fmt.Sprintf("make peer group %d", g.id), err)
	}
	return nil
}

// sameSuperblock checks that the helper another namespace made for g is
// on the filesystem g has here. Kernels that refuse to clone a mount of
// another namespace (5.10; 6.18 allows it) give each namespace a
// filesystem of its own (see makeSuperblock), and then no mount of one
// can be a peer of a mount of the other.
func sameSuperblock(g *group) error {
	var h, m unix.Stat_t
	if err := unix.Fstat(g.helper, &h); err != nil {
		return g.at.err(fmt.Sprintf("stat the helper of peer group %d", g.id), err)
	}
	if err := unix.Fstat(g.at.fd, &m); err != nil {
		return g.at.err("stat", err)
	}
	if h.Dev != m.Dev {
		return g.at.err("rebuild mount propagation", fmt.Errorf("peer group %d spans mount namespaces, but this kernel could not share the filesystem between them (it refuses to clone a detached mount: gocr check --feature clone-detached-mount), so its mounts here cannot join the group: %w", g.id, ErrUnsupported))
	}
	return nil
}
