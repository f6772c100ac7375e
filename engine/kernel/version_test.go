package kernel

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseRelease(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Version
	}{
		{"6.18.44-fc-v782", Version{6, 18, 44}},
		{"5.10.0-28-amd64", Version{5, 10, 0}},
		{"6.1", Version{6, 1, 0}},
		{"6.12.0+", Version{6, 12, 0}},
		{"4.19.304", Version{4, 19, 304}},
		{"7.0-rc1", Version{7, 0, 0}},
		{"6.6.0.1-weird", Version{6, 6, 0}},
	} {
		got, err := ParseRelease(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseRelease(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "6", "linux", "6-rc1", ".1.2"} {
		if v, err := ParseRelease(bad); err == nil {
			t.Errorf("ParseRelease(%q) = %v, want error", bad, v)
		}
	}
}

func TestAtLeast(t *testing.T) {
	v := Version{6, 7, 0}
	for o, want := range map[Version]bool{{6, 7, 0}: true, {6, 6, 99}: true, {5, 99, 0}: true, {6, 7, 1}: false, {7, 0, 0}: false} {
		if v.AtLeast(o) != want {
			t.Errorf("%v.AtLeast(%v) != %v", v, o, want)
		}
	}
}

func TestRunning(t *testing.T) {
	rel, v, err := Running()
	if err != nil {
		t.Fatal(err)
	}
	var u unix.Utsname
	unix.Uname(&u)
	if p, _ := ParseRelease(rel); rel != unix.ByteSliceToString(u.Release[:]) || p != v || v.Major < 3 {
		t.Errorf("Running() = %q, %v", rel, v)
	}
}

func FuzzParseRelease(f *testing.F) {
	f.Add("6.18.44-fc-v782")
	f.Add("5.10.0-28-amd64")
	f.Fuzz(func(t *testing.T, s string) {
		ParseRelease(s)
	})
}
