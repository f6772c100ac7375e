package harness

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseDescCRIUSyntax(t *testing.T) {
	// Descriptors as they appear in CRIU's zdtm tree.
	d, err := ParseDesc("t.desc", `{'flavor': 'h ns', 'flags': 'suid excl',
	  "feature": 'mnt_id',  # comment
	  'timeout': '120', 'deps': ['/bin/sh'] if False else 'x',
	}`)
	if err == nil {
		t.Fatalf("want an error for a non-string value, got %+v", d)
	}
	d, err = ParseDesc("t.desc", "{'flavor': 'h ns', 'flags': 'suid excl', \"feature\": 'mnt_id', # c\n 'timeout': '120', 'opts': '--tcp-established', 'arch': 'x86_64',}\n")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Flavors, []string{"h", "ns"}) || !d.HasFlag("suid") || !d.HasFlag("excl") || d.HasFlag("crfail") {
		t.Fatalf("flavors/flags: %+v", d)
	}
	if !slices.Equal(d.Features, []string{"mnt_id"}) || d.Timeout != 120*time.Second || d.Arch != "x86_64" {
		t.Fatalf("feature/timeout/arch: %+v", d)
	}
	if !d.RunsIn("ns") || d.RunsIn("uns") {
		t.Fatalf("RunsIn: %+v", d)
	}
	if d, err := ParseDesc("empty", " \n"); err != nil || d.Timeout != DefaultTimeout || !d.RunsIn("uns") {
		t.Fatalf("empty descriptor: %+v %v", d, err)
	}
}

func TestParseDescRejects(t *testing.T) {
	for _, bad := range []string{
		"{'flavor': 'h xx'}",
		"{'timeout': 'soon'}",
		"{'timeout': '-1'}",
		"{'flags': 'a'",
		"{'flags' 'a'}",
		"{'flags': 'a'} trailing",
		"{'a': 'b', 'a': 'c'}",
		"{'a': 'unterminated}",
	} {
		if _, err := ParseDesc("bad.desc", bad); err == nil || !strings.Contains(err.Error(), "bad.desc") {
			t.Errorf("%q: want an error naming the file, got %v", bad, err)
		}
	}
}

func FuzzParseDesc(f *testing.F) {
	f.Add("{'flavor': 'h ns uns', 'flags': 'suid', 'timeout': '30'}")
	f.Add("{}")
	f.Fuzz(func(t *testing.T, s string) {
		ParseDesc("fuzz.desc", s) // must not panic
	})
}
