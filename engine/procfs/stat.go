package procfs

import (
	"bytes"
	"fmt"
	"strings"
)

// TaskStat is the part of /proc/PID/stat the dump needs: the task's place in the
// tree and the mm layout that PR_SET_MM_MAP restores. Field numbers are those
// of proc(5). The mm fields read 0 unless the reader may ptrace the task.
type TaskStat struct {
	Pid        int
	Comm       string // without the parentheses; may hold spaces and ')'
	State      byte   // R, S, D, T, t, Z, X, ...
	PPid       int
	Pgrp       int
	Session    int
	TtyNr      int
	Tpgid      int
	Flags      uint64 // PF_* bits
	MinFlt     uint64
	MajFlt     uint64
	Utime      uint64 // clock ticks
	Stime      uint64
	Priority   int64
	Nice       int64
	NumThreads int
	StartTime  uint64 // clock ticks after boot
	VSize      uint64
	RSS        int64 // pages
	StartCode  uint64
	EndCode    uint64
	StartStack uint64
	ExitSignal int
	Processor  int
	RTPriority uint64
	Policy     uint64
	// The rest appeared in 3.3 (start_data..end_data..start_brk) and 3.5
	// (arg/env ranges, exit_code); zero on older kernels.
	StartData uint64
	EndData   uint64
	StartBrk  uint64
	ArgStart  uint64
	ArgEnd    uint64
	EnvStart  uint64
	EnvEnd    uint64
	ExitCode  int
}

// Stat reads /proc/PID/stat.
func Stat(pid int) (TaskStat, error) {
	b, err := readFile(pid, "stat")
	if err != nil {
		return TaskStat{}, err
	}
	st, err := ParseStat(b)
	if err != nil {
		return TaskStat{}, fmt.Errorf("parse %s: %w", path(pid, "stat"), err)
	}
	return st, nil
}

// statMinFields is how many fields after comm we insist on: up to
// startstack (field 28), which every kernel we care about prints.
const statMinFields = 28 - 2

// ParseStat parses the single line of a stat file. comm is found between the
// first '(' and the last ')', because a task may name itself "a) (b".
func ParseStat(b []byte) (TaskStat, error) {
	var st TaskStat
	b = bytes.TrimRight(b, "\n")
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open {
		return st, fmt.Errorf("no (comm) in stat: %w", errSyntax)
	}
	pid, err := parseInt(strings.TrimSpace(string(b[:open])))
	if err != nil {
		return st, fmt.Errorf("pid: %w", err)
	}
	st.Pid = int(pid)
	st.Comm = string(b[open+1 : closing])
	f := strings.Fields(string(b[closing+1:]))
	if len(f) < statMinFields {
		return st, fmt.Errorf("stat has %d fields after comm, want at least %d: %w", len(f), statMinFields, errSyntax)
	}
	if len(f[0]) != 1 {
		return st, fmt.Errorf("bad state %q: %w", f[0], errSyntax)
	}
	st.State = f[0][0]

	// field n of proc(5) is f[n-3].
	var firstErr error
	u := func(n int) uint64 {
		if n-3 >= len(f) || firstErr != nil {
			return 0
		}
		v, err := parseUint(f[n-3], 10)
		if err != nil {
			firstErr = fmt.Errorf("field %d: %w", n, err)
		}
		return v
	}
	i := func(n int) int64 {
		if n-3 >= len(f) || firstErr != nil {
			return 0
		}
		v, err := parseInt(f[n-3])
		if err != nil {
			firstErr = fmt.Errorf("field %d: %w", n, err)
		}
		return v
	}
	st.PPid = int(i(4))
	st.Pgrp = int(i(5))
	st.Session = int(i(6))
	st.TtyNr = int(i(7))
	st.Tpgid = int(i(8))
	st.Flags = u(9)
	st.MinFlt = u(10)
	st.MajFlt = u(12)
	st.Utime = u(14)
	st.Stime = u(15)
	st.Priority = i(18)
	st.Nice = i(19)
	st.NumThreads = int(i(20))
	st.StartTime = u(22)
	st.VSize = u(23)
	st.RSS = i(24)
	st.StartCode = u(26)
	st.EndCode = u(27)
	st.StartStack = u(28)
	st.ExitSignal = int(i(38))
	st.Processor = int(i(39))
	st.RTPriority = u(40)
	st.Policy = u(41)
	st.StartData = u(45)
	st.EndData = u(46)
	st.StartBrk = u(47)
	st.ArgStart = u(48)
	st.ArgEnd = u(49)
	st.EnvStart = u(50)
	st.EnvEnd = u(51)
	st.ExitCode = int(i(52))
	if firstErr != nil {
		return st, firstErr
	}
	return st, nil
}
