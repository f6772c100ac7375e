package mount

import (
	"fmt"
	"sort"

	"golang.org/x/sys/unix"
)

// group is one peer group of the namespace (shared:N), rebuilt with a
// helper mount: a private clone of the widest root the group's superblock
// offers, made shared (and, for a group that is also a slave, the slave
// of its master's helper first); every member then copies the helper's
// sharing with MOVE_MOUNT_SET_GROUP, which requires the same superblock,
// a helper root covering the member's root and a private member.
type group struct {
	id      uint32
	members []*rmount
	widest  *rmount
	master  uint32 // 0, or the peer group this group receives from
	helper  int    // detached helper mount, -1 before
}

// planGroups collects the peer groups, masters before their slaves.
func planGroups(mounts []*rmount, shared map[uint32]bool) ([]*group, error) {
	byID := map[uint32]*group{}
	var groups []*group
	for _, m := range mounts {
		id := m.e.GetSharedId()
		if id == 0 {
			continue
		}
		g := byID[id]
		if g == nil {
			g = &group{id: id, master: m.e.GetMasterId(), helper: -1}
			byID[id] = g
			groups = append(groups, g)
		}
		g.members = append(g.members, m)
	}
	for _, g := range groups {
		sort.SliceStable(g.members, func(i, j int) bool {
			return len(g.members[i].e.GetRoot()) < len(g.members[j].e.GetRoot())
		})
		g.widest = g.members[0]
		for _, m := range g.members {
			if m.e.GetMasterId() != g.master {
				return nil, m.err("plan propagation", fmt.Errorf("peer of group %d but slave of %d, not %d like its peers", g.id, m.e.GetMasterId(), g.master))
			}
			if (m.sb == nil) != (g.widest.sb == nil) || (m.sb != nil && m.sb != g.widest.sb) {
				return nil, m.err("plan propagation", fmt.Errorf("peer group %d spans different filesystems", g.id))
			}
			if m.sb == nil && !under(m.hostPath, g.widest.hostPath) {
				return nil, m.err("plan propagation", fmt.Errorf("peer group %d: host path %s is not under %s, the widest root of the group", g.id, m.hostPath, g.widest.hostPath))
			}
		}
	}
	// Masters first: a depth-first walk along master links.
	var out []*group
	state := map[*group]int{} // 1 visiting, 2 done
	var visit func(g *group) error
	visit = func(g *group) error {
		switch state[g] {
		case 1:
			return g.widest.err("plan propagation", fmt.Errorf("peer group %d is its own master through a cycle", g.id))
		case 2:
			return nil
		}
		state[g] = 1
		if mg := byID[g.master]; mg != nil {
			if err := visit(mg); err != nil {
				return err
			}
		}
		state[g] = 2
		out = append(out, g)
		return nil
	}
	for _, g := range groups {
		if err := visit(g); err != nil {
			return nil, err
		}
	}
	for _, m := range mounts {
		if id := m.e.GetMasterId(); id != 0 && m.e.GetSharedId() == 0 && shared[id] {
			if mg := byID[id]; mg.widest.sb != m.sb {
				return nil, m.err("plan propagation", fmt.Errorf("slave of peer group %d, which lives on another filesystem", id))
			}
		}
	}
	return out, nil
}

// hostHelpers clones, in gocr's namespace, the helpers of groups made of
// external binds. A group whose master is outside the namespace gets a
// helper that is the slave of the host mount's group.
func (b *builder) hostHelpers() error {
	for _, g := range b.groups {
		if g.widest.sb != nil {
			continue
		}
		fd, err := unix.OpenTree(unix.AT_FDCWD, g.widest.hostPath, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			return g.widest.err("clone host path "+g.widest.hostPath+" for peer group "+fmt.Sprint(g.id), err)
		}
		g.helper = fd
		prop := uintptr(unix.MS_PRIVATE)
		if g.master != 0 && !b.shared[g.master] {
			prop = unix.MS_SLAVE
		}
		if err := setPropagation(fd, prop); err != nil {
			return g.widest.err("detach helper of peer group "+fmt.Sprint(g.id)+" from the host", err)
		}
	}
	return nil
}

// makeHelpers clones the helpers of groups on fresh superblocks from the
// staging area, before it goes away with the old root.
func (b *builder) makeHelpers() error {
	for _, g := range b.groups {
		if g.widest.sb == nil {
			continue
		}
		fd, err := unix.OpenTree(b.stageFd, g.widest.sb.stage, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			return g.widest.err("clone helper of peer group "+fmt.Sprint(g.id), err)
		}
		g.helper = fd
	}
	return nil
}

// setGroup makes to share what from shares: its peers and its master.
func setGroup(from, to int) error {
	return unix.MoveMount(from, "", to, "", unix.MOVE_MOUNT_SET_GROUP|unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
}

// propagate rebuilds peer groups, slaves and unbindable mounts on the
// finished tree.
func (b *builder) propagate() error {
	byID := map[uint32]*group{}
	for _, g := range b.groups {
		byID[g.id] = g
		if mg := byID[g.master]; mg != nil {
			if err := setGroup(mg.helper, g.helper); err != nil {
				return g.widest.err(fmt.Sprintf("make peer group %d a slave of %d (MOVE_MOUNT_SET_GROUP)", g.id, g.master), err)
			}
			if err := setPropagation(g.helper, unix.MS_SLAVE); err != nil {
				return g.widest.err(fmt.Sprintf("make peer group %d a slave", g.id), err)
			}
		}
		if err := setPropagation(g.helper, unix.MS_SHARED); err != nil {
			return g.widest.err(fmt.Sprintf("make peer group %d", g.id), err)
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
	return nil
}
