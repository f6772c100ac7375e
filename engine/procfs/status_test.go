package procfs

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestStatusSelf(t *testing.T) {
	st, err := Status(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.Tgid != os.Getpid() || st.Pid != os.Getpid() || st.PPid != os.Getppid() || st.Threads < 2 {
		t.Errorf("ids: %+v", st)
	}
	if len(st.NSpid) == 0 || st.NSpid[len(st.NSpid)-1] != os.Getpid() {
		t.Errorf("NSpid %v", st.NSpid)
	}
	if st.Uid[0] != uint32(os.Getuid()) || st.Uid[1] != uint32(os.Geteuid()) || st.Gid[0] != uint32(os.Getgid()) {
		t.Errorf("uid %v gid %v", st.Uid, st.Gid)
	}
	groups, _ := os.Getgroups()
	if len(groups) != len(st.Groups) {
		t.Errorf("groups %v, os says %v", st.Groups, groups)
	}
	// The Go runtime catches SIGURG (23) for preemption.
	if st.SigCgt&(1<<(unix.SIGURG-1)) == 0 {
		t.Errorf("SigCgt %#x lacks SIGURG", st.SigCgt)
	}
	old := unix.Umask(0o027)
	unix.Umask(old)
	if st.Umask != old {
		t.Errorf("umask %o, want %o", st.Umask, old)
	}
	var cpus unix.CPUSet
	if err := unix.SchedGetaffinity(0, &cpus); err != nil {
		t.Fatal(err)
	}
	if st.CpusAllowed.Count() != cpus.Count() {
		t.Errorf("Cpus_allowed_list %v, affinity has %d", st.CpusAllowed.CPUs(), cpus.Count())
	}
	for _, c := range st.CpusAllowed.CPUs() {
		if !cpus.IsSet(c) {
			t.Errorf("cpu %d listed but not in affinity", c)
		}
	}
	var hdr = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		t.Fatal(err)
	}
	if eff := uint64(data[1].Effective)<<32 | uint64(data[0].Effective); eff != st.CapEff {
		t.Errorf("CapEff %#x, capget %#x", st.CapEff, eff)
	}
}

func TestStatusChildIgnoredSignal(t *testing.T) {
	cmd := startSleeper(t, `trap "" USR1`)
	st, err := Status(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if st.SigIgn&(1<<(unix.SIGUSR1-1)) == 0 {
		t.Errorf("SigIgn %#x lacks SIGUSR1", st.SigIgn)
	}
	if st.State != 'S' || st.PPid != os.Getpid() || st.Threads != 1 || st.SigQueueLimit == 0 {
		t.Errorf("child status: %+v", st)
	}
	if st.NoNewPrivs || st.Seccomp != 0 {
		t.Errorf("child has nnp/seccomp: %+v", st)
	}
}

func TestParseStatusSample(t *testing.T) {
	in := "Name:\tx\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t10\nPid:\t11\nPPid:\t1\n" +
		"Uid:\t1\t2\t3\t4\nGid:\t5\t6\t7\t8\nGroups:\t10 20 \nNStgid:\t10\t1\nNSpid:\t11\t2\nNSpgid:\t10\t1\nNSsid:\t9\t0\n" +
		"Threads:\t2\nSigQ:\t3/96364\nSigPnd:\t0000000000000001\nShdPnd:\t0000000000000002\nSigBlk:\tfffffffe7ffbfeff\n" +
		"SigIgn:\t0000000000001000\nSigCgt:\t0000000180000000\nCapInh:\t0000000000000000\nCapPrm:\t000001fffeffffff\n" +
		"CapEff:\t000001fffeffffff\nCapBnd:\t000001fffeffffff\nCapAmb:\t0000000000000001\nNoNewPrivs:\t1\nSeccomp:\t2\n" +
		"Seccomp_filters:\t1\nSpeculation_Store_Bypass:\tvulnerable\nCpus_allowed_list:\t0-2,5,7-8\n"
	st, err := ParseStatus([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if st.Umask != 0o22 || st.State != 'S' || st.Tgid != 10 || st.Pid != 11 || st.Uid != [4]uint32{1, 2, 3, 4} ||
		st.Gid != [4]uint32{5, 6, 7, 8} || len(st.Groups) != 2 || st.NSpid[1] != 2 || st.NSsid[1] != 0 ||
		st.SigQueued != 3 || st.SigPnd != 1 || st.ShdPnd != 2 || st.SigBlk != 0xfffffffe7ffbfeff ||
		st.SigCgt != 0x180000000 || st.CapAmb != 1 || !st.NoNewPrivs || st.Seccomp != 2 || st.SeccompFilters != 1 {
		t.Errorf("parsed %+v", st)
	}
	if got := st.CpusAllowed.CPUs(); len(got) != 6 || got[3] != 5 || got[5] != 8 {
		t.Errorf("cpus %v", got)
	}
	if st, _ := ParseStatus([]byte("Pid:\t1\n")); st.Umask != -1 {
		t.Errorf("missing Umask gives %d", st.Umask)
	}
	for _, bad := range []string{"Uid:\t1 2\n", "SigBlk:\tzz\n", "SigQ:\t3\n", "Cpus_allowed_list:\t3-1\n", "Cpus_allowed_list:\t0-99999999\n", "State:\t\n"} {
		if _, err := ParseStatus([]byte(bad)); err == nil {
			t.Errorf("ParseStatus(%q) accepted garbage", bad)
		}
	}
}

func FuzzParseStatus(f *testing.F) {
	seed(f, "/proc/self/status")
	seed(f, "/proc/1/status")
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseStatus(b)
		if err == nil {
			_ = st.CpusAllowed.CPUs()
		}
	})
}

func FuzzParseCPUList(f *testing.F) {
	f.Add("0-1")
	f.Add("0,2-3,8-15")
	f.Fuzz(func(t *testing.T, s string) {
		set, err := ParseCPUList(s)
		if err == nil && set.Count() > maxCPUs {
			t.Fatalf("%d cpus", set.Count())
		}
	})
}
