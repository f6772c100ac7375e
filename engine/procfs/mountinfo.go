package procfs

import (
	"fmt"
	"strconv"
	"strings"
)

// Mount is one line of /proc/PID/mountinfo. Paths are unescaped (the kernel
// writes space, tab, newline and backslash as \040, \011, \012, \134).
type Mount struct {
	ID, ParentID int
	Major, Minor uint32
	Root         string // the part of the filesystem mounted here
	MountPoint   string // relative to the reading process's root
	Options      string // per-mount options, e.g. "rw,nosuid,relatime"
	// Optional holds the optional fields as printed; the known ones are
	// also decoded below (0 when absent).
	Optional      []string
	Shared        int // shared:N, peer group
	Master        int // master:N, the peer group we receive from
	PropagateFrom int // propagate_from:N
	Unbindable    bool
	FSType        string // "type" or "type.subtype"
	Source        string
	SuperOptions  string
}

// MountInfo reads /proc/PID/mountinfo: the mounts of PID's mount namespace
// as seen from PID's root.
func MountInfo(pid int) ([]Mount, error) {
	b, err := readFile(pid, "mountinfo")
	if err != nil {
		return nil, err
	}
	m, err := ParseMountInfo(b)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path(pid, "mountinfo"), err)
	}
	return m, nil
}

// ParseMountInfo parses the text of a mountinfo file.
func ParseMountInfo(b []byte) ([]Mount, error) {
	var out []Mount
	err := lines(b, func(_ int, line []byte) error {
		if len(line) == 0 {
			return nil
		}
		m, err := parseMountLine(string(line))
		if err != nil {
			return err
		}
		out = append(out, m)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// parseMountLine parses
// "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue".
// Escaping guarantees no field holds a space, so splitting on spaces is
// exact; the optional fields run up to the lone "-".
func parseMountLine(s string) (Mount, error) {
	var m Mount
	f := strings.Split(s, " ")
	if len(f) < 7 {
		return m, fmt.Errorf("%d fields, want at least 7: %w", len(f), errSyntax)
	}
	var err error
	if m.ID, err = atoi(f[0]); err != nil {
		return m, fmt.Errorf("mount id: %w", err)
	}
	if m.ParentID, err = atoi(f[1]); err != nil {
		return m, fmt.Errorf("parent id: %w", err)
	}
	maj, min, ok := strings.Cut(f[2], ":")
	if !ok {
		return m, fmt.Errorf("bad device %q: %w", f[2], errSyntax)
	}
	a, err1 := strconv.ParseUint(maj, 10, 32)
	b, err2 := strconv.ParseUint(min, 10, 32)
	if err1 != nil || err2 != nil {
		return m, fmt.Errorf("bad device %q: %w", f[2], errSyntax)
	}
	m.Major, m.Minor = uint32(a), uint32(b)
	m.Root = unescapeOctal(f[3])
	m.MountPoint = unescapeOctal(f[4])
	m.Options = f[5]
	i := 6
	for ; i < len(f) && f[i] != "-"; i++ {
		opt := f[i]
		m.Optional = append(m.Optional, opt)
		k, v, _ := strings.Cut(opt, ":")
		var dst *int
		switch k {
		case "shared":
			dst = &m.Shared
		case "master":
			dst = &m.Master
		case "propagate_from":
			dst = &m.PropagateFrom
		case "unbindable":
			m.Unbindable = true
			continue
		default:
			continue // a field from a newer kernel
		}
		if *dst, err = atoi(v); err != nil {
			return m, fmt.Errorf("%s: %w", k, err)
		}
	}
	if i >= len(f) {
		return m, fmt.Errorf("no \"-\" separator: %w", errSyntax)
	}
	rest := f[i+1:]
	if len(rest) < 1 {
		return m, fmt.Errorf("no filesystem type: %w", errSyntax)
	}
	m.FSType = unescapeOctal(rest[0])
	if len(rest) > 1 {
		m.Source = unescapeOctal(rest[1])
	}
	if len(rest) > 2 {
		m.SuperOptions = unescapeOctal(strings.Join(rest[2:], " "))
	}
	return m, nil
}
