package procfs

import (
	"os"
	"testing"
	"time"
)

func TestParseTimeOffsets(t *testing.T) {
	o, err := ParseTimeOffsets([]byte("monotonic      864000         5\nboottime           -2 500000000\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := TimeOffsets{Monotonic: 864000*time.Second + 5, Boottime: -1500 * time.Millisecond}
	if o != want {
		t.Errorf("got %+v, want %+v", o, want)
	}
	if s := o.String(); s != "monotonic 864000 5\nboottime -2 500000000\n" {
		t.Errorf("String() = %q", s)
	}
	if back, err := ParseTimeOffsets([]byte(o.String())); err != nil || back != o {
		t.Errorf("String() does not parse back: %+v, %v", back, err)
	}
	if o, err := ParseTimeOffsets([]byte("1 3 0\n7 -4 0\n")); err != nil || o.Monotonic != 3*time.Second || o.Boottime != -4*time.Second {
		t.Errorf("numeric clock ids: %+v, %v", o, err)
	}
	for _, bad := range []string{"", "monotonic 0 0\n", "monotonic 0 0\nboottime 0 1000000000\n",
		"monotonic 0 0\nboottime x 0\n", "monotonic 0 0\nboottime 0 -1\n", "monotonic 0\nboottime 0 0\n",
		"monotonic 99999999999999 0\nboottime 0 0\n"} {
		if _, err := ParseTimeOffsets([]byte(bad)); err == nil {
			t.Errorf("ParseTimeOffsets(%q) accepted garbage", bad)
		}
	}
}

func TestTimeNSOffsetsSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/timens_offsets"); err != nil {
		t.Skip("no time namespaces (kernel < 5.6 or CONFIG_TIME_NS off)")
	}
	if _, err := TimeNSOffsets(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseTimeOffsets(f *testing.F) {
	f.Add([]byte("monotonic 0 0\nboottime 0 0\n"))
	f.Add([]byte("monotonic -5 999999999\nboottime 7 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := ParseTimeOffsets(b)
		if err != nil {
			return
		}
		if back, err := ParseTimeOffsets([]byte(o.String())); err != nil || back != o {
			t.Errorf("%+v prints as %q, which parses as %+v, %v", o, o.String(), back, err)
		}
	})
}
