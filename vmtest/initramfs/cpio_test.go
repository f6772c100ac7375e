package initramfs

import (
	"bytes"
	"slices"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.File("/bin/init", 0o755, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := w.CharDev("dev/console", 0o600, 5, 1); err != nil {
		t.Fatal(err)
	}
	if err := w.Symlink("/lib64", "lib"); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%4 != 0 {
		t.Fatalf("archive of %d bytes is not 4-aligned", buf.Len())
	}
	es, err := List(&buf)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"bin", "bin/init", "dev", "dev/console", "lib64"}
	if got := Names(es); !slices.Equal(got, want) {
		t.Fatalf("names %v, want %v", got, want)
	}
	for _, e := range es {
		switch e.Name {
		case "bin/init":
			if string(e.Data) != "hello" || e.Mode != 0o100755 {
				t.Errorf("bin/init: %q mode %o", e.Data, e.Mode)
			}
		case "dev/console":
			if e.Major != 5 || e.Minor != 1 || e.Mode != 0o020600 {
				t.Errorf("dev/console: %d:%d mode %o", e.Major, e.Minor, e.Mode)
			}
		case "lib64":
			if string(e.Data) != "lib" {
				t.Errorf("lib64 -> %q", e.Data)
			}
		}
	}
}
