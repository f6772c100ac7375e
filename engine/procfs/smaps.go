package procfs

import (
	"bytes"
	"fmt"
)

// MapsWithFlags reads /proc/PID/smaps and returns the VMAs with their
// VmFlags filled in. Only the mapping lines and VmFlags are parsed: smaps
// is large (some twenty lines per VMA) and the rest is statistics the dump
// does not use.
func MapsWithFlags(pid int) ([]VMA, error) {
	b, err := readFile(pid, "smaps")
	if err != nil {
		return nil, err
	}
	vmas, err := ParseSmaps(b)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path(pid, "smaps"), err)
	}
	return vmas, nil
}

var vmFlagsKey = []byte("VmFlags:")

// ParseSmaps parses the text of an smaps file into VMAs with Flags set.
// A statistics line is told from a mapping line by its first word, which
// ends in ':' ("Rss:") where a mapping line's is an address range.
func ParseSmaps(b []byte) ([]VMA, error) {
	var vmas []VMA
	err := lines(b, func(_ int, line []byte) error {
		if len(line) == 0 {
			return nil
		}
		if bytes.HasPrefix(line, vmFlagsKey) {
			if len(vmas) == 0 {
				return fmt.Errorf("VmFlags before any mapping: %w", errSyntax)
			}
			v := &vmas[len(vmas)-1]
			v.Flags, v.UnknownFlags = ParseVmFlagsUnknown(string(line[len(vmFlagsKey):]))
			return nil
		}
		sp := bytes.IndexByte(line, ' ')
		if sp > 0 && line[sp-1] == ':' {
			return nil // a statistics line
		}
		if sp < 0 && line[len(line)-1] == ':' {
			return nil
		}
		v, err := parseMapsLine(line)
		if err != nil {
			return err
		}
		vmas = append(vmas, v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return vmas, nil
}
