package vmtest

import (
	"archive/tar"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gocr/gocr/vmtest/guest"
	"github.com/gocr/gocr/vmtest/qemu"
	"github.com/gocr/gocr/vmtest/qemu/qemutest"
)

func TestMain(m *testing.M) {
	qemutest.Main() // the test binary is also the stand-in QEMU
	os.Exit(m.Run())
}

func TestUnpackResults(t *testing.T) {
	dir := t.TempDir()
	stream := filepath.Join(dir, "results.tar")
	f, _ := os.Create(stream)
	tw := tar.NewWriter(f)
	st, _ := json.Marshal(guest.Status{Release: "6.1.0-50-amd64", Summary: "zdtm: 3 passed, 1 failed, 2 skipped (engine none, kernel 6.1.0-50-amd64)"})
	for name, b := range map[string][]byte{guest.FileLog: []byte("log\n"), guest.FileStatus: st} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b))})
		tw.Write(b)
	}
	tw.Close()
	f.Close()
	got, err := unpackResults(stream, dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Release != "6.1.0-50-amd64" || summaryRE.FindStringSubmatch(got.Summary)[3] != "2" {
		t.Fatalf("status %+v", got)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, guest.FileLog)); string(b) != "log\n" {
		t.Fatalf("zdtm.log %q", b)
	}

	// A stream cut short (the guest crashed while sending) has no status.
	os.WriteFile(stream, []byte("garbage that is not a tar archive, cut short"), 0o644)
	if st, err := unpackResults(stream, dir); err == nil || st != nil {
		t.Fatalf("cut stream: %v %v", st, err)
	}
}

func TestDuringAndTable(t *testing.T) {
	dir := t.TempDir()
	console := filepath.Join(dir, "console.log")
	os.WriteFile(console, []byte("zdtm counter h/plain\n  counter h/plain: PASS\nzdtm threads ns/iter3\n[ 12.0] Kernel panic - not syncing: sysrq triggered crash\n"), 0o644)
	if got := during(console); got != " during threads ns/iter3" {
		t.Fatalf("during: %q", got)
	}
	rs := []*Result{
		{Line: "6.1", Release: "6.1.0-50-amd64", Passed: 57, End: qemu.EndPoweroff, Wall: 34 * time.Second, Suite: 28 * time.Second},
		{Line: "7.2", Release: "7.2.13+deb14-amd64", Failed: 1, End: qemu.EndCrash, Note: "the guest kernel crashed (guest-reset) during threads ns/iter3"},
	}
	var sb strings.Builder
	WriteTable(&sb, rs, "none", 90*time.Second)
	out := sb.String()
	for _, want := range []string{"FAIL (guest-reset)", "vmtest: 57 passed, 1 failed, 0 skipped (2 kernels, engine none, wall 1m30s)", "7.2: the guest kernel crashed"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
