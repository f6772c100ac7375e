package procfs

import (
	"fmt"
	"strconv"
	"strings"
)

// maxCPUs bounds a parsed CPU list; the kernel's NR_CPUS tops out at 8192,
// and a bound keeps hostile input from allocating gigabytes.
const maxCPUs = 1 << 16

// CPUSet is a CPU affinity mask, bit n for CPU n, as sched_setaffinity
// takes it.
type CPUSet []uint64

// ParseCPUList parses a list like "0-3,8,10-11" (Cpus_allowed_list).
func ParseCPUList(s string) (CPUSet, error) {
	var set CPUSet
	s = strings.TrimSpace(s)
	if s == "" {
		return set, nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 || a >= maxCPUs {
			return nil, fmt.Errorf("bad cpu %q: %w", lo, errSyntax)
		}
		b := a
		if isRange {
			b, err = strconv.Atoi(hi)
			if err != nil || b < a || b >= maxCPUs {
				return nil, fmt.Errorf("bad cpu range %q: %w", part, errSyntax)
			}
		}
		for c := a; c <= b; c++ {
			set.Set(c)
		}
	}
	return set, nil
}

// Set adds CPU c.
func (s *CPUSet) Set(c int) {
	for len(*s) <= c/64 {
		*s = append(*s, 0)
	}
	(*s)[c/64] |= 1 << (c % 64)
}

// Has reports whether CPU c is in the set.
func (s CPUSet) Has(c int) bool {
	return c >= 0 && c/64 < len(s) && s[c/64]&(1<<(c%64)) != 0
}

// CPUs lists the members in increasing order.
func (s CPUSet) CPUs() []int {
	var out []int
	for i, w := range s {
		for b := 0; b < 64; b++ {
			if w&(1<<b) != 0 {
				out = append(out, i*64+b)
			}
		}
	}
	return out
}

// Count is the number of CPUs in the set.
func (s CPUSet) Count() int { return len(s.CPUs()) }
