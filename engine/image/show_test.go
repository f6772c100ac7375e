package image

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestShow(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "img")
	writeSample(t, dir).Close()
	var b strings.Builder
	if err := Show(dir, &b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"task 100 (sleeper)", "100,101", "/usr/bin/sleeper", "[heap]", "[vsyscall]", "r-xp",
		"pages dumped: 6", "PIPE", "pipe[4242]", "pty[3 master]", "/dev/null", "SIGUSR1", "SIGPIPE   ignored",
		"written 13", "cwd /, root /",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "SIGINT") {
		t.Error("show lists a default disposition")
	}

	os.Remove(filepath.Join(dir, MmFile(sampleChild)))
	os.Remove(filepath.Join(dir, FilesFile))
	b.Reset()
	if err := Show(dir, &b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"mm-102.img: missing", "files.img: missing", "task 102"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("show with missing files lacks %q:\n%s", want, b.String())
		}
	}
}
