// Command vmtest-init is /init of vmtest's guests: it prepares a minimal
// system (a tmpfs root, proc, sys, devtmpfs, the needed kernel modules),
// runs the zdtm suite, streams the results to the host through the
// virtio-serial port "results" and powers the VM off. It is built static
// (CGO_ENABLED=0) and is the only process the kernel starts.
//
// It never exits: if pid 1 exits the kernel panics, which the host would
// read as a crash. Every failure is reported through the results port (or
// at least the console) and followed by a power-off.
package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/internal/netif"

	"github.com/gocr/gocr/vmtest/guest"
)

// initLog collects what init does; it goes to the console and, at the end,
// into the results as init.log.
var initLog bytes.Buffer

func logf(format string, args ...any) {
	msg := fmt.Sprintf("vmtest-init: "+format+"\n", args...)
	initLog.WriteString(msg)
	os.Stdout.WriteString(msg)
}

func main() {
	st := guest.Status{ExitCode: -1}
	files := map[string][]byte{}
	cfg, err := setup(&st)
	switch {
	case err != nil:
		st.Error = err.Error()
		logf("setup failed: %v", err)
	case cfg.Probe:
		logf("probe: kernel %s is up, answering and powering off", st.Release)
		st.ExitCode = 0
	default:
		runSuite(cfg, &st, files)
	}
	if err := sendResults(&st, files); err != nil {
		logf("results: %v", err)
	}
	if cfg.Inject == "hang" {
		logf("inject=hang: not powering off")
		for {
			time.Sleep(time.Hour) // a bare select{} would be a deadlock, and pid 1 would exit
		}
	}
	powerOff()
}

func setup(st *guest.Status) (guest.Config, error) {
	var cfg guest.Config
	if err := switchRoot(); err != nil {
		return cfg, fmt.Errorf("switch to a tmpfs root: %w", err)
	}
	mounts := []struct{ src, dst, fstype, data string }{
		{"proc", "/proc", "proc", ""},
		{"sysfs", "/sys", "sysfs", ""},
		{"devtmpfs", "/dev", "devtmpfs", "mode=0755"},
		{"devpts", "/dev/pts", "devpts", "ptmxmode=0666"},
		{"tmpfs", "/dev/shm", "tmpfs", "mode=1777"},
		// Images of the biggest workload (256 MiB) live here beside it.
		{"tmpfs", "/tmp", "tmpfs", "mode=1777,size=90%"},
		{"tmpfs", "/run", "tmpfs", "mode=0755"},
	}
	for _, m := range mounts {
		if err := os.MkdirAll(m.dst, 0o755); err != nil {
			return cfg, err
		}
		if err := unix.Mount(m.src, m.dst, m.fstype, unix.MS_NOSUID, m.data); err != nil {
			return cfg, fmt.Errorf("mount %s on %s: %w", m.fstype, m.dst, err)
		}
	}
	unix.Sethostname([]byte("vmtest"))
	if err := netif.Up("lo"); err != nil {
		return cfg, err
	}
	var u unix.Utsname
	unix.Uname(&u)
	st.Release = unix.ByteSliceToString(u.Release[:])
	logf("kernel %s", st.Release)

	b, err := os.ReadFile(guest.ConfigPath)
	if err != nil {
		return cfg, err
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return cfg, fmt.Errorf("%s: %w", guest.ConfigPath, err)
	}
	for _, m := range cfg.Modules {
		if err := loadModule(filepath.Join(guest.ModulesDir, m)); err != nil {
			return cfg, err
		}
		st.Modules = append(st.Modules, m)
	}
	for _, m := range cfg.Optional {
		if err := loadModule(filepath.Join(guest.ModulesDir, m)); err != nil {
			logf("optional %v", err)
			continue
		}
		st.Modules = append(st.Modules, m)
	}
	if cfg.Inject == "panic" {
		go func() {
			time.Sleep(time.Duration(cfg.InjectAfter) * time.Second)
			logf("inject=panic: crashing the kernel through sysrq")
			os.WriteFile("/proc/sysrq-trigger", []byte("c"), 0)
		}()
	}
	return cfg, nil
}

// switchRoot moves everything from the initramfs (rootfs, which
// pivot_root refuses to leave) onto a tmpfs and makes that the root, so
// the workloads' own mount namespaces can pivot_root as on a real system.
func switchRoot() error {
	const nr = "/newroot"
	if err := os.MkdirAll(nr, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("rootfs", nr, "tmpfs", 0, "mode=0755"); err != nil {
		return err
	}
	entries, err := os.ReadDir("/")
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := "/" + e.Name()
		if name == nr || name == "/dev" {
			continue
		}
		if err := copyTree(name, nr+name); err != nil {
			return err
		}
		os.RemoveAll(name)
	}
	for _, d := range []string{"dev", "proc", "sys", "tmp", "run"} {
		os.MkdirAll(filepath.Join(nr, d), 0o755)
	}
	if err := unix.Chdir(nr); err != nil {
		return err
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move %s to /: %w", nr, err)
	}
	if err := unix.Chroot("."); err != nil {
		return err
	}
	return unix.Chdir("/")
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := dst + strings.TrimPrefix(p, src)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm())
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, target)
		case d.Type().IsRegular():
			in, err := os.Open(p)
			if err != nil {
				return err
			}
			defer in.Close()
			out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, info.Mode().Perm())
			if err != nil {
				return err
			}
			if _, err := io.Copy(out, in); err != nil {
				out.Close()
				return err
			}
			return out.Close()
		}
		return nil // device nodes: devtmpfs provides them
	})
}

// loadModule loads a .ko, letting the kernel decompress .ko.xz/.ko.zst.
func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("module: %w", err)
	}
	defer f.Close()
	flags := 0
	if strings.HasSuffix(path, ".xz") || strings.HasSuffix(path, ".zst") || strings.HasSuffix(path, ".gz") {
		flags = unix.MODULE_INIT_COMPRESSED_FILE
	}
	t := time.Now()
	err = unix.FinitModule(int(f.Fd()), "", flags)
	if err == unix.EEXIST {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("finit_module %s: %w", filepath.Base(path), err)
	}
	logf("loaded %s (%v)", filepath.Base(path), time.Since(t).Round(time.Millisecond))
	return nil
}

func runSuite(cfg guest.Config, st *guest.Status, files map[string][]byte) {
	st.FdinfoMnt = fdinfoHasMntID()
	logf("fdinfo shows mnt_id: %v", st.FdinfoMnt)

	gocr := filepath.Join(guest.BinDir, "gocr")
	if out, err := exec.Command(gocr, "check", "--all").CombinedOutput(); err != nil && len(out) == 0 {
		files[guest.FileCheck] = []byte(fmt.Sprintf("gocr check --all: %v\n", err))
	} else {
		files[guest.FileCheck] = out
	}

	var log bytes.Buffer
	junit := filepath.Join("/tmp", guest.FileJUnit)
	cmd := exec.Command(guest.TestBinary, append(cfg.Args, "-ginkgo.junit-report="+junit)...)
	cmd.Dir = guest.SuiteDir
	cmd.Env = append([]string{
		"PATH=" + guest.BinDir + ":/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root", "TMPDIR=/tmp", "TERM=dumb",
		"ZDTM_BIN_DIR=" + guest.BinDir,
		"ZDTM_RESULTS=" + guest.ResultsDir,
	}, cfg.Env...)
	cmd.Stdout = io.MultiWriter(os.Stdout, &log)
	cmd.Stderr = cmd.Stdout
	logf("running %s", strings.Join(cmd.Args, " "))
	t := time.Now()
	err := cmd.Run()
	st.Seconds = time.Since(t).Seconds()
	st.ExitCode = cmd.ProcessState.ExitCode()
	if err != nil && st.ExitCode < 0 {
		st.Error = fmt.Sprintf("run the suite: %v", err)
	}
	logf("suite finished in %.1fs, exit code %d", st.Seconds, st.ExitCode)
	sc := bufio.NewScanner(bytes.NewReader(log.Bytes()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "zdtm: ") && strings.Contains(l, " passed, ") {
			st.Summary = l
		}
	}
	files[guest.FileLog] = log.Bytes()
	if b, err := os.ReadFile(junit); err == nil {
		files[guest.FileJUnit] = b
	}
	if b, err := tarGz(guest.ResultsDir); err != nil {
		logf("pack failing specs: %v", err)
	} else if b != nil {
		files[guest.FileFailures] = b
	}
}

// fdinfoHasMntID reports whether /proc/PID/fdinfo carries mnt_id, which
// gocr needs to reopen files on the right mount.
func fdinfoHasMntID() bool {
	f, err := os.Open("/")
	if err != nil {
		return false
	}
	defer f.Close()
	b, _ := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", f.Fd()))
	return bytes.Contains(b, []byte("\nmnt_id:"))
}

// Limits of failed.tgz: logs and small images come out whole; page
// images of big workloads (heap256m has 256 MiB) would take minutes to
// compress under TCG and fill the guest's memory, so they are listed in
// SKIPPED instead.
const (
	maxFailedFile  = 4 << 20
	maxFailedTotal = 48 << 20
)

// tarGz packs the regular files under dir; nil when there are none.
func tarGz(dir string) ([]byte, error) {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	n, total := 0, int64(0)
	var skipped []string
	add := func(name string, r io.Reader, size int64) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, ModTime: time.Now()}); err != nil {
			return err
		}
		_, err := io.CopyN(tw, r, size)
		return err
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if info.Size() > maxFailedFile || total+info.Size() > maxFailedTotal {
			skipped = append(skipped, fmt.Sprintf("%s %d", rel, info.Size()))
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		n++
		total += info.Size()
		return add(rel, f, info.Size())
	})
	if err != nil {
		return nil, err
	}
	if len(skipped) > 0 {
		list := "files left out (too big to bring out of the VM), with their sizes:\n" + strings.Join(skipped, "\n") + "\n"
		if err := add("SKIPPED", strings.NewReader(list), int64(len(list))); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if n == 0 && len(skipped) == 0 {
		return nil, nil
	}
	return buf.Bytes(), nil
}

// resultsPort finds the virtio-serial port named "results".
func resultsPort() (string, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		names, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
		for _, n := range names {
			b, _ := os.ReadFile(n)
			if strings.TrimSpace(string(b)) == guest.PortName {
				return "/dev/" + filepath.Base(filepath.Dir(n)), nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no virtio-serial port named %q (ports: %v)", guest.PortName, names)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sendResults writes the results as a tar stream to the results port.
func sendResults(st *guest.Status, files map[string][]byte) error {
	port, err := resultsPort()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(port, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	stb, _ := json.MarshalIndent(st, "", "  ")
	files[guest.FileStatus] = stb
	files[guest.FileInit] = initLog.Bytes()
	tw := tar.NewWriter(f)
	// status.json last: the host takes a stream that has it as complete.
	order := []string{guest.FileInit, guest.FileCheck, guest.FileLog, guest.FileJUnit, guest.FileFailures, guest.FileStatus}
	for _, name := range order {
		b, ok := files[name]
		if !ok {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: time.Now()}); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	logf("results sent through %s", port)
	return nil
}

func powerOff() {
	unix.Sync()
	logf("powering off")
	for {
		unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
		time.Sleep(time.Second)
	}
}
