package engine

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/image"
)

// zdtm.py makes every images directory 0777 before the dump. gocr dumps
// into it and restores from it; what it refuses is an image file in it
// that someone else could have put there or could still change: a link
// in place of a file, a FIFO, a file group or others may write to. Each
// is refused naming the file, before anything is created.
func TestRestoreFromOpenDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	cmd, _ := startWorkload(t, dir)
	pid := cmd.Process.Pid
	tids := threadsOf(pid)
	base := filepath.Join(dir, "base")
	if err := os.Mkdir(base, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(base, 0o777) // as zdtm.py: past the umask
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := Dump(ctx, DumpOptions{Pid: pid, ImagesDir: base}); err != nil {
		t.Fatalf("dump into a 0777 directory: %v", err)
	}
	cmd.Wait()

	pagesFile := ""
	for _, n := range listImages(t, base) {
		if strings.HasPrefix(n, "pages-") {
			pagesFile = n
			break
		}
	}
	cases := []struct {
		name, file, want string
		damage           func(dir, file string)
	}{
		{"symlinked image file", image.PstreeFile, "symbolic link", func(dir, file string) {
			os.Rename(filepath.Join(dir, file), filepath.Join(dir, "elsewhere"))
			os.Symlink("elsewhere", filepath.Join(dir, file))
		}},
		{"group-writable image file", image.InventoryFile, "mode 0660 is writable by group or others", func(dir, file string) {
			os.Chmod(filepath.Join(dir, file), 0o660)
		}},
		{"others-writable pages file", pagesFile, "mode 0606 is writable by group or others", func(dir, file string) {
			os.Chmod(filepath.Join(dir, file), 0o606)
		}},
		{"FIFO as image file", image.PstreeFile, "not a regular file", func(dir, file string) {
			os.Remove(filepath.Join(dir, file))
			unix.Mkfifo(filepath.Join(dir, file), 0o600)
		}},
		{"image file of another user", image.PstreeFile, "owned by uid 4242", func(dir, file string) {
			os.Chown(filepath.Join(dir, file), 4242, 4242)
		}},
	}
	for i, c := range cases {
		work := filepath.Join(dir, "c"+string(rune('a'+i)))
		copyDir(t, base, work)
		os.Chmod(work, 0o777)
		c.damage(work, c.file)
		res, err := restoreNoPanic(ctx, work)
		if err == nil {
			unix.Kill(res.Pid, unix.SIGKILL)
			res.Wait(ctx)
			t.Errorf("%s: restored", c.name)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, c.file) || !strings.Contains(msg, c.want) {
			t.Errorf("%s: %v; want an error naming %s and saying %q", c.name, err, c.file, c.want)
		}
		if left := alive(tids); len(left) > 0 {
			t.Fatalf("%s: tasks %v left behind", c.name, left)
		}
	}

	// The directory as the dump left it, 0777, restores.
	res, err := Restore(ctx, RestoreOptions{ImagesDir: base})
	if err != nil {
		t.Fatalf("restore from a 0777 directory: %v", err)
	}
	if res.Pid != pid {
		t.Errorf("restored pid %d, want %d", res.Pid, pid)
	}
	unix.Kill(res.Pid, unix.SIGKILL)
	res.Wait(ctx)
}
