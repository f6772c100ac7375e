package procfs

import (
	"os"
	"testing"
)

func TestStatSelfAndChild(t *testing.T) {
	self, err := Stat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if self.Pid != os.Getpid() || self.PPid != os.Getppid() || self.NumThreads < 2 {
		t.Errorf("self stat: %+v", self)
	}
	cmd := startSleeper(t, "")
	pid := cmd.Process.Pid
	st, err := Stat(pid)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pid != pid || st.PPid != os.Getpid() || st.Comm != "sleep" || st.State != 'S' || st.NumThreads != 1 {
		t.Errorf("child stat: %+v", st)
	}
	if st.Pgrp != self.Pgrp || st.Session != self.Session {
		t.Errorf("child pgrp/session %d/%d, ours %d/%d", st.Pgrp, st.Session, self.Pgrp, self.Session)
	}
	if st.StartTime < self.StartTime {
		t.Errorf("child started (%d) before us (%d)", st.StartTime, self.StartTime)
	}
	// mm layout: only visible with ptrace access, which root has.
	if !(st.StartCode < st.EndCode && st.StartData < st.EndData && st.EndData <= st.StartBrk) {
		t.Errorf("code/data/brk layout odd: %+v", st)
	}
	if !(st.ArgStart < st.ArgEnd && st.ArgEnd <= st.EnvStart && st.EnvStart < st.EnvEnd) {
		t.Errorf("arg/env layout odd: %+v", st)
	}
	vmas, err := Maps(pid)
	if err != nil {
		t.Fatal(err)
	}
	v, ok := findVMA(vmas, st.StartStack)
	if !ok || v.Kind() != MapStack {
		t.Errorf("startstack %#x not in [stack] (%+v)", st.StartStack, v)
	}
	if v, ok := findVMA(vmas, st.ArgStart); !ok || v.Kind() != MapStack {
		t.Errorf("arg_start %#x not in [stack]", st.ArgStart)
	}
	if st.ExitSignal != 17 { // SIGCHLD
		t.Errorf("exit signal %d", st.ExitSignal)
	}
}

func TestParseStatOddComm(t *testing.T) {
	line := "3133 (a) (b c) R 3130 3130 2052 34816 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 17923 3133440 393 " +
		"18446744073709551615 94842829500416 94842829520297 140737269754432 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 " +
		"94842829536304 94842829537920 94843597877248 140737269758463 140737269758483 140737269758483 140737269759979 9\n"
	st, err := ParseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := TaskStat{
		Pid: 3133, Comm: "a) (b c", State: 'R', PPid: 3130, Pgrp: 3130, Session: 2052, TtyNr: 34816, Tpgid: -1,
		Flags: 4194304, MinFlt: 100, Priority: 20, NumThreads: 1, StartTime: 17923, VSize: 3133440, RSS: 393,
		StartCode: 94842829500416, EndCode: 94842829520297, StartStack: 140737269754432, ExitSignal: 17, Processor: 1,
		StartData: 94842829536304, EndData: 94842829537920, StartBrk: 94843597877248,
		ArgStart: 140737269758463, ArgEnd: 140737269758483, EnvStart: 140737269758483, EnvEnd: 140737269759979, ExitCode: 9,
	}
	if st != want {
		t.Errorf("got  %+v\nwant %+v", st, want)
	}
	// An old kernel's shorter line still parses, with the newer fields 0.
	short := "1 (init) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 5 100 10 18446744073709551615 1 2 3"
	st, err = ParseStat([]byte(short))
	if err != nil || st.StartStack != 3 || st.ExitCode != 0 {
		t.Errorf("short line: %+v, %v", st, err)
	}
	for _, bad := range []string{"", "1 init S", "1 (x) S 1 2", "x (y) S", "1 (x) SS 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1"} {
		if _, err := ParseStat([]byte(bad)); err == nil {
			t.Errorf("ParseStat(%q) accepted garbage", bad)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	seed(f, "/proc/self/stat")
	seed(f, "/proc/1/stat")
	f.Add([]byte("1 ()) R 0 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 1 1 1 1 1 1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseStat(b)
	})
}
