package ns

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/userns"
)

// overflowID is what an id without a mapping reads as inside a user
// namespace (/proc/sys/kernel/overflowuid, overflowgid).
const overflowID = 65534

// DumpUser reads the uid and gid maps of pid's user namespace, as gocr's
// own user namespace sees them (lower ids are gocr's). A namespace where
// setgroups is denied is refused: CRIU's image cannot say so.
func DumpUser(pid int) (*userns.UsernsEntry, error) {
	e := &userns.UsernsEntry{}
	var err error
	if e.UidMap, err = readIDMap(fmt.Sprintf("/proc/%d/uid_map", pid)); err != nil {
		return nil, err
	}
	if e.GidMap, err = readIDMap(fmt.Sprintf("/proc/%d/gid_map", pid)); err != nil {
		return nil, err
	}
	p := fmt.Sprintf("/proc/%d/setgroups", pid)
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	if s := strings.TrimSpace(string(b)); s != "allow" {
		return nil, fmt.Errorf("%s is %q: a user namespace with setgroups denied is not supported yet", p, s)
	}
	return e, nil
}

func readIDMap(p string) ([]*userns.UidGidExtent, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var out []*userns.UidGidExtent
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("%s line %d: %q: want 3 fields", p, i+1, line)
		}
		var v [3]uint32
		for j := range f {
			n, err := strconv.ParseUint(f[j], 10, 32)
			if err != nil {
				return nil, fmt.Errorf("%s line %d: %w", p, i+1, err)
			}
			v[j] = uint32(n)
		}
		out = append(out, &userns.UidGidExtent{First: ptr(v[0]), LowerFirst: ptr(v[1]), Count: ptr(v[2])})
	}
	return out, nil
}

// CheckUser refuses maps a restore cannot use: the stub becomes uid and
// gid 0 of the new namespace before it executes (see ptrace.StubSpec.Root),
// so 0 must be mapped.
func CheckUser(e *userns.UsernsEntry) error {
	for _, m := range []struct {
		name string
		ext  []*userns.UidGidExtent
	}{{"uid_map", e.UidMap}, {"gid_map", e.GidMap}} {
		if len(m.ext) == 0 || len(m.ext) > 340 {
			return fmt.Errorf("%s: %d extents: want 1 to 340", m.name, len(m.ext))
		}
		if _, ok := Outside(m.ext, 0); !ok {
			return fmt.Errorf("%s: 0 is not mapped: restoring a user namespace without a root is not supported", m.name)
		}
	}
	return nil
}

// WriteUserMaps writes the maps into the fresh user namespace of pid, as a
// task of its parent namespace. setgroups stays allowed.
func WriteUserMaps(pid int, e *userns.UsernsEntry) error {
	for _, m := range []struct {
		file string
		ext  []*userns.UidGidExtent
	}{{"uid_map", e.UidMap}, {"gid_map", e.GidMap}} {
		var b strings.Builder
		for _, x := range m.ext {
			fmt.Fprintf(&b, "%d %d %d\n", x.GetFirst(), x.GetLowerFirst(), x.GetCount())
		}
		p := fmt.Sprintf("/proc/%d/%s", pid, m.file)
		if err := os.WriteFile(p, []byte(b.String()), 0); err != nil {
			return fmt.Errorf("write %s (%q): %w", p, b.String(), err)
		}
	}
	return nil
}

// Inside translates an id of gocr's user namespace into the namespace the
// map describes: the overflow id (65534) if it has no mapping there.
func Inside(ext []*userns.UidGidExtent, id uint32) uint32 {
	for _, x := range ext {
		if id >= x.GetLowerFirst() && id-x.GetLowerFirst() < x.GetCount() {
			return x.GetFirst() + (id - x.GetLowerFirst())
		}
	}
	return overflowID
}

// Outside translates an id of the namespace the map describes into gocr's.
func Outside(ext []*userns.UidGidExtent, id uint32) (uint32, bool) {
	for _, x := range ext {
		if id >= x.GetFirst() && id-x.GetFirst() < x.GetCount() {
			return x.GetLowerFirst() + (id - x.GetFirst()), true
		}
	}
	return 0, false
}
