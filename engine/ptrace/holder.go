package ptrace

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// pidHolder says who keeps pid taken, for the EEXIST error of SpawnStub:
// a live task (process or thread), or a process group or session that
// still carries the number after its leader died.
func pidHolder(pid int) string {
	if comm, _, _, err := readStat(strconv.Itoa(pid)); err == nil {
		tgid, _ := tgidOf(pid)
		if tgid != 0 && tgid != pid {
			return fmt.Sprintf("pid %d is a thread of pid %d (%s)", pid, tgid, comm)
		}
		return fmt.Sprintf("pid %d is held by process %s%s", pid, comm, tracedBy(pid))
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		comm, pgrp, sid, err := readStat(e.Name())
		if err != nil {
			continue
		}
		switch pid {
		case sid:
			return fmt.Sprintf("pid %d is still the session id of pid %s (%s)", pid, e.Name(), comm)
		case pgrp:
			return fmt.Sprintf("pid %d is still the process group id of pid %s (%s)", pid, e.Name(), comm)
		}
	}
	return fmt.Sprintf("pid %d is taken, by no process visible in /proc", pid)
}

// readStat returns comm, pgrp and session from /proc/PID/stat. comm is in
// parentheses and may itself contain spaces and parentheses, so fields are
// counted from the last ')'.
func readStat(pid string) (comm string, pgrp, sid int, err error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return "", 0, 0, err
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return "", 0, 0, fmt.Errorf("malformed /proc/%s/stat", pid)
	}
	f := strings.Fields(s[end+1:]) // state ppid pgrp session ...
	if len(f) < 4 {
		return "", 0, 0, fmt.Errorf("malformed /proc/%s/stat", pid)
	}
	pgrp, _ = strconv.Atoi(f[2])
	sid, _ = strconv.Atoi(f[3])
	return s[open+1 : end], pgrp, sid, nil
}

// tracedBy says ", traced by pid M (comm)" when pid is traced — a stub of
// another restore in progress is.
func tracedBy(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "TracerPid:"); ok {
			if tp := strings.TrimSpace(v); tp != "0" {
				comm, _ := os.ReadFile("/proc/" + tp + "/comm")
				return fmt.Sprintf(", traced by pid %s (%s)", tp, strings.TrimSpace(string(comm)))
			}
		}
	}
	return ""
}
