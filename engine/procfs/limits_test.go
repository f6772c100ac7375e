package procfs

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestLimitsSelfMatchesGetrlimit(t *testing.T) {
	limits, err := Limits(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if len(limits) != 16 {
		t.Errorf("%d limits, want 16", len(limits))
	}
	for res := 0; res < 16; res++ {
		l, ok := LimitFor(limits, res)
		if !ok {
			t.Errorf("resource %d missing", res)
			continue
		}
		var rl unix.Rlimit
		if err := unix.Getrlimit(res, &rl); err != nil {
			t.Fatal(err)
		}
		if l.Soft != rl.Cur || l.Hard != rl.Max {
			t.Errorf("%s: /proc says %d/%d, getrlimit %d/%d", l.Name, l.Soft, l.Hard, rl.Cur, rl.Max)
		}
	}
}

func TestLimitsChildLowered(t *testing.T) {
	cmd := startSleeper(t, "ulimit -S -n 77")
	limits, err := Limits(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	l, ok := LimitFor(limits, unix.RLIMIT_NOFILE)
	if !ok || l.Soft != 77 || l.Units != "files" {
		t.Errorf("child nofile %+v", l)
	}
	var rl unix.Rlimit
	if err := unix.Prlimit(cmd.Process.Pid, unix.RLIMIT_NOFILE, nil, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Max != l.Hard {
		t.Errorf("hard %d, prlimit %d", l.Hard, rl.Max)
	}
}

func TestParseLimitsSample(t *testing.T) {
	in := "Limit                     Soft Limit           Hard Limit           Units     \n" +
		"Max cpu time              unlimited            unlimited            seconds   \n" +
		"Max stack size            8388608              unlimited            bytes     \n" +
		"Max nice priority         0                    0                    \n" +
		"Max new thing             5                    6                    odd units\n"
	l, err := ParseLimits([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Limit{
		{"Max cpu time", unix.RLIMIT_CPU, RlimInfinity, RlimInfinity, "seconds"},
		{"Max stack size", unix.RLIMIT_STACK, 8388608, RlimInfinity, "bytes"},
		{"Max nice priority", unix.RLIMIT_NICE, 0, 0, ""},
		{"Max new thing", -1, 5, 6, "odd units"},
	}
	if len(l) != len(want) {
		t.Fatalf("got %+v", l)
	}
	for i := range want {
		if l[i] != want[i] {
			t.Errorf("row %d: %+v, want %+v", i, l[i], want[i])
		}
	}
	for _, bad := range []string{"Max cpu time\n", "Max cpu time 5\n", "Max x 99999999999999999999999 1\n", "5 5\n"} {
		if _, err := ParseLimits([]byte(bad)); err == nil {
			t.Errorf("ParseLimits(%q) accepted garbage", bad)
		}
	}
}

func FuzzParseLimits(f *testing.F) {
	seed(f, "/proc/self/limits")
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseLimits(b)
	})
}
