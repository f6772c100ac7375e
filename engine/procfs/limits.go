package procfs

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// RlimInfinity is what "unlimited" stands for (RLIM_INFINITY).
const RlimInfinity = ^uint64(0)

// Limit is one resource limit. Reading /proc/PID/limits needs no privilege,
// unlike prlimit64 on another uid's task, which fails without
// CAP_SYS_RESOURCE.
type Limit struct {
	Name     string // "Max open files"
	Resource int    // RLIMIT_* number; -1 for a name this package does not know
	Soft     uint64
	Hard     uint64
	Units    string // may be empty
}

var limitResources = map[string]int{
	"Max cpu time":          unix.RLIMIT_CPU,
	"Max file size":         unix.RLIMIT_FSIZE,
	"Max data size":         unix.RLIMIT_DATA,
	"Max stack size":        unix.RLIMIT_STACK,
	"Max core file size":    unix.RLIMIT_CORE,
	"Max resident set":      unix.RLIMIT_RSS,
	"Max processes":         unix.RLIMIT_NPROC,
	"Max open files":        unix.RLIMIT_NOFILE,
	"Max locked memory":     unix.RLIMIT_MEMLOCK,
	"Max address space":     unix.RLIMIT_AS,
	"Max file locks":        unix.RLIMIT_LOCKS,
	"Max pending signals":   unix.RLIMIT_SIGPENDING,
	"Max msgqueue size":     unix.RLIMIT_MSGQUEUE,
	"Max nice priority":     unix.RLIMIT_NICE,
	"Max realtime priority": unix.RLIMIT_RTPRIO,
	"Max realtime timeout":  unix.RLIMIT_RTTIME,
}

// Limits reads /proc/PID/limits.
func Limits(pid int) ([]Limit, error) {
	b, err := readFile(pid, "limits")
	if err != nil {
		return nil, err
	}
	l, err := ParseLimits(b)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path(pid, "limits"), err)
	}
	return l, nil
}

// ParseLimits parses the text of a limits file. The name column holds
// spaces, so a row is split at its first value ("unlimited" or a number).
func ParseLimits(b []byte) ([]Limit, error) {
	var out []Limit
	err := lines(b, func(n int, line []byte) error {
		f := strings.Fields(string(line))
		if len(f) == 0 || (n == 1 && f[0] == "Limit") {
			return nil
		}
		i := 0
		for i < len(f) && !isLimitValue(f[i]) {
			i++
		}
		if i == 0 || i+1 >= len(f) {
			return fmt.Errorf("no soft and hard values in %q: %w", line, errSyntax)
		}
		l := Limit{Name: strings.Join(f[:i], " "), Resource: -1}
		if r, ok := limitResources[l.Name]; ok {
			l.Resource = r
		}
		var err error
		if l.Soft, err = parseLimitValue(f[i]); err != nil {
			return err
		}
		if l.Hard, err = parseLimitValue(f[i+1]); err != nil {
			return err
		}
		if i+2 < len(f) {
			l.Units = strings.Join(f[i+2:], " ")
		}
		out = append(out, l)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func isLimitValue(s string) bool {
	if s == "unlimited" {
		return true
	}
	_, err := parseDec([]byte(s))
	return err == nil
}

func parseLimitValue(s string) (uint64, error) {
	if s == "unlimited" {
		return RlimInfinity, nil
	}
	return parseDec([]byte(s))
}

// LimitFor finds the limit for resource (a unix.RLIMIT_* number).
func LimitFor(limits []Limit, resource int) (Limit, bool) {
	for _, l := range limits {
		if l.Resource == resource {
			return l, true
		}
	}
	return Limit{}, false
}
