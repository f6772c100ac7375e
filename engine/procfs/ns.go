package procfs

import (
	"fmt"
	"os"
	"strings"
)

// NamespaceKinds lists the files of /proc/PID/ns the engine looks at (a
// fresh slice each call). pid_for_children and time_for_children differ
// from pid and time after an unshare not yet followed by a fork.
func NamespaceKinds() []string {
	return []string{
		"mnt", "pid", "pid_for_children", "net", "ipc", "uts", "user",
		"cgroup", "time", "time_for_children",
	}
}

// Namespaces maps each namespace kind to its nsfs inode, the id that tells
// whether two tasks share a namespace. Kinds the kernel lacks (time before
// 5.6, cgroup before 4.6) are absent from the map.
func Namespaces(pid int) (map[string]uint64, error) {
	kinds := NamespaceKinds()
	out := make(map[string]uint64, len(kinds))
	for _, kind := range kinds {
		ino, err := NamespaceInode(pid, kind)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return nil, err
		}
		out[kind] = ino
	}
	return out, nil
}

// NamespaceInode reads the inode of one /proc/PID/ns/KIND link.
func NamespaceInode(pid int, kind string) (uint64, error) {
	p := path(pid, "ns/"+kind)
	t, err := os.Readlink(p)
	if err != nil {
		return 0, fmt.Errorf("readlink %s: %w", p, err)
	}
	ino, err := ParseNamespaceLink(t)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", p, err)
	}
	return ino, nil
}

// ParseNamespaceLink parses a link target such as "mnt:[4026531832]".
func ParseNamespaceLink(t string) (uint64, error) {
	_, rest, ok := strings.Cut(t, ":[")
	if !ok || !strings.HasSuffix(rest, "]") {
		return 0, fmt.Errorf("bad namespace link %q: %w", t, errSyntax)
	}
	return parseUint(rest[:len(rest)-1], 10)
}
