package procfs

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// TaskStatus holds the lines of /proc/PID/status the dump needs: ids at
// every pid-namespace level, credentials, signal masks and capabilities.
type TaskStatus struct {
	Name      string // as status prints it (escaped); prefer Comm
	Umask     int    // -1 when the kernel does not print it (< 4.7)
	State     byte
	Tgid      int
	Pid       int
	PPid      int
	TracerPid int
	// Uid and Gid are real, effective, saved set, filesystem.
	Uid    [4]uint32
	Gid    [4]uint32
	Groups []uint32
	// NStgid..NSsid list the id in each pid namespace, outermost first.
	NStgid, NSpid, NSpgid, NSsid []int
	Threads                      int
	SigQueued, SigQueueLimit     uint64 // SigQ: queued/limit
	SigPnd, ShdPnd               uint64
	SigBlk, SigIgn, SigCgt       uint64
	CapInh, CapPrm, CapEff       uint64
	CapBnd, CapAmb               uint64
	NoNewPrivs                   bool
	Seccomp                      int // 0 off, 1 strict, 2 filter
	SeccompFilters               int
	CpusAllowed                  CPUSet
}

// Status reads /proc/PID/status.
func Status(pid int) (TaskStatus, error) {
	b, err := readFile(pid, "status")
	if err != nil {
		return TaskStatus{}, err
	}
	st, err := ParseStatus(b)
	if err != nil {
		return TaskStatus{}, fmt.Errorf("parse %s: %w", path(pid, "status"), err)
	}
	return st, nil
}

// ThreadStatus reads /proc/PID/task/TID/status: what is per thread
// (credentials, NoNewPrivs, Seccomp, the signal mask) is the thread's own.
func ThreadStatus(pid, tid int) (TaskStatus, error) {
	name := "task/" + strconv.Itoa(tid) + "/status"
	b, err := readFile(pid, name)
	if err != nil {
		return TaskStatus{}, err
	}
	st, err := ParseStatus(b)
	if err != nil {
		return TaskStatus{}, fmt.Errorf("parse %s: %w", path(pid, name), err)
	}
	return st, nil
}

// ParseStatus parses the text of a status file. Unknown keys are skipped, so
// new kernel lines do not break it.
func ParseStatus(b []byte) (TaskStatus, error) {
	st := TaskStatus{Umask: -1}
	err := lines(b, func(_ int, line []byte) error {
		k, v, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			return nil
		}
		val := strings.TrimSpace(string(v))
		var err error
		switch string(k) {
		case "Name":
			st.Name = val
		case "Umask":
			var u uint64
			u, err = parseUint(val, 8)
			st.Umask = int(u & 0o7777)
		case "State":
			if val == "" {
				return fmt.Errorf("empty State: %w", errSyntax)
			}
			st.State = val[0]
		case "Tgid":
			st.Tgid, err = atoi(val)
		case "Pid":
			st.Pid, err = atoi(val)
		case "PPid":
			st.PPid, err = atoi(val)
		case "TracerPid":
			st.TracerPid, err = atoi(val)
		case "Uid":
			err = parseIDs(val, &st.Uid)
		case "Gid":
			err = parseIDs(val, &st.Gid)
		case "Groups":
			for _, g := range strings.Fields(val) {
				n, err := parseUint(g, 10)
				if err != nil || n > 0xffffffff {
					return fmt.Errorf("Groups: bad gid %q: %w", g, errSyntax)
				}
				st.Groups = append(st.Groups, uint32(n))
			}
		case "NStgid":
			st.NStgid, err = parseIntList(val)
		case "NSpid":
			st.NSpid, err = parseIntList(val)
		case "NSpgid":
			st.NSpgid, err = parseIntList(val)
		case "NSsid":
			st.NSsid, err = parseIntList(val)
		case "Threads":
			st.Threads, err = atoi(val)
		case "SigQ":
			q, l, ok := strings.Cut(val, "/")
			if !ok {
				return fmt.Errorf("SigQ %q: %w", val, errSyntax)
			}
			if st.SigQueued, err = parseUint(q, 10); err == nil {
				st.SigQueueLimit, err = parseUint(l, 10)
			}
		case "SigPnd":
			st.SigPnd, err = parseUint(val, 16)
		case "ShdPnd":
			st.ShdPnd, err = parseUint(val, 16)
		case "SigBlk":
			st.SigBlk, err = parseUint(val, 16)
		case "SigIgn":
			st.SigIgn, err = parseUint(val, 16)
		case "SigCgt":
			st.SigCgt, err = parseUint(val, 16)
		case "CapInh":
			st.CapInh, err = parseUint(val, 16)
		case "CapPrm":
			st.CapPrm, err = parseUint(val, 16)
		case "CapEff":
			st.CapEff, err = parseUint(val, 16)
		case "CapBnd":
			st.CapBnd, err = parseUint(val, 16)
		case "CapAmb":
			st.CapAmb, err = parseUint(val, 16)
		case "NoNewPrivs":
			var n int
			n, err = atoi(val)
			st.NoNewPrivs = n != 0
		case "Seccomp":
			st.Seccomp, err = atoi(val)
		case "Seccomp_filters":
			st.SeccompFilters, err = atoi(val)
		case "Cpus_allowed_list":
			st.CpusAllowed, err = ParseCPUList(val)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		return nil
	})
	if err != nil {
		return TaskStatus{}, err
	}
	return st, nil
}

func atoi(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("bad number %q: %w", s, errSyntax)
	}
	return n, nil
}

func parseIDs(s string, out *[4]uint32) error {
	f := strings.Fields(s)
	if len(f) != 4 {
		return fmt.Errorf("want 4 ids, got %q: %w", s, errSyntax)
	}
	for i, x := range f {
		n, err := parseUint(x, 10)
		if err != nil || n > 0xffffffff {
			return fmt.Errorf("bad id %q: %w", x, errSyntax)
		}
		out[i] = uint32(n)
	}
	return nil
}

func parseIntList(s string) ([]int, error) {
	f := strings.Fields(s)
	out := make([]int, 0, len(f))
	for _, x := range f {
		n, err := atoi(x)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}
