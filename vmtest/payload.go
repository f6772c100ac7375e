// Package vmtest runs gocr's zdtm suite inside QEMU on real distribution
// kernels: it builds what the guest runs (a static /init, gocr, the
// suite's test binary and its workloads), fetches kernels from Debian's
// archive (package kernel), packs an initramfs per kernel, boots it
// (package qemu), collects the results through a virtio-serial port and
// reports per kernel and as a matrix.
package vmtest

import (
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gocr/gocr/vmtest/guest"
	"github.com/gocr/gocr/vmtest/initramfs"
)

// Payload is what every guest carries, whatever its kernel.
type Payload struct {
	Files []File
	// CWorkloads names the C workloads built (none when gcc or their
	// sources are missing).
	CWorkloads []string
}

// File is one file of the initramfs and where it comes from on the host.
type File struct {
	Dest string
	Src  string
	Mode os.FileMode // 0: the host file's mode
}

// BuildInit builds only vmtest-init into dir, for the accelerator probe,
// which needs nothing else; it returns its path.
func BuildInit(ctx context.Context, repo, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "init")
	cmd := exec.CommandContext(ctx, goBinary(), "build", "-o", out, "./vmtest/cmd/vmtest-init")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build vmtest-init: %v\n%s", err, b)
	}
	return out, nil
}

func goBinary() string {
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	return "go"
}

// BuildPayload builds the guest's binaries from the source tree at repo
// into dir, all static (CGO_ENABLED=0) except C workloads that link
// glibc on purpose; their shared libraries are taken along.
func BuildPayload(ctx context.Context, repo, dir, ldflags string, log func(string, ...any)) (*Payload, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	t := time.Now()
	gobin := goBinary()
	builds := []struct {
		out  string
		args []string
	}{
		{"init", []string{"build", "-o", "OUT", "./vmtest/cmd/vmtest-init"}},
		{"gocr", []string{"build", "-ldflags", ldflags, "-o", "OUT", "./cmd/gocr"}},
		{"zdtm-workload", []string{"build", "-o", "OUT", "./zdtm/cmd/zdtm-workload"}},
		{"zdtm.test", []string{"test", "-c", "-o", "OUT", "./zdtm"}},
	}
	for _, b := range builds {
		args := slices.Clone(b.args)
		args[slices.Index(args, "OUT")] = filepath.Join(dir, b.out)
		cmd := exec.CommandContext(ctx, gobin, args...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	p := &Payload{Files: []File{
		{Dest: "/init", Src: filepath.Join(dir, "init"), Mode: 0o755},
		{Dest: guest.BinDir + "/gocr", Src: filepath.Join(dir, "gocr"), Mode: 0o755},
		{Dest: guest.BinDir + "/zdtm-workload", Src: filepath.Join(dir, "zdtm-workload"), Mode: 0o755},
		{Dest: guest.TestBinary, Src: filepath.Join(dir, "zdtm.test"), Mode: 0o755},
	}}
	if err := p.addCWorkloads(ctx, repo, filepath.Join(dir, "c"), log); err != nil {
		return nil, err
	}
	if err := p.addServers(log); err != nil {
		return nil, err
	}
	log("built the guest payload in %v (C workloads: %s)", time.Since(t).Round(100*time.Millisecond), strings.Join(p.CWorkloads, " "))
	return p, nil
}

// addCWorkloads builds zdtm/workloads/c with its build.sh when it is
// there and gcc is installed; the suite finds their descriptors in
// workloads/c under its working directory.
func (p *Payload) addCWorkloads(ctx context.Context, repo, dir string, log func(string, ...any)) error {
	src := filepath.Join(repo, "zdtm", "workloads", "c")
	if _, err := os.Stat(filepath.Join(src, "build.sh")); err != nil {
		return nil
	}
	if _, err := exec.LookPath("gcc"); err != nil {
		log("gcc missing: the C workloads are left out")
		return nil
	}
	os.RemoveAll(dir)
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(src, "build.sh"), dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build C workloads: %v\n%s", err, out)
	}
	descs, _ := filepath.Glob(filepath.Join(src, "*.desc"))
	libs := map[string]bool{}
	for _, d := range descs {
		name := strings.TrimSuffix(filepath.Base(d), ".desc")
		bin := filepath.Join(dir, name)
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("C workload %s: build.sh made no %s", name, bin)
		}
		p.Files = append(p.Files,
			File{Dest: guest.BinDir + "/" + name, Src: bin, Mode: 0o755},
			File{Dest: guest.SuiteDir + "/workloads/c/" + filepath.Base(d), Src: d, Mode: 0o644})
		p.CWorkloads = append(p.CWorkloads, name)
		if err := sharedLibs(bin, libs); err != nil {
			return fmt.Errorf("C workload %s: %w", name, err)
		}
	}
	for l := range libs {
		p.Files = append(p.Files, File{Dest: l, Src: l, Mode: 0o755})
	}
	return nil
}

// serverBinaries are the real programs of the server workloads
// (redis_server, nginx_server), at their host paths; make server-deps
// installs them.
var serverBinaries = []string{"/usr/bin/redis-server", "/usr/sbin/nginx"}

// addServers takes the server programs the host has into the guest, with
// their libraries and the user database nginx looks its user up in.
func (p *Payload) addServers(log func(string, ...any)) error {
	libs := map[string]bool{}
	var missing []string
	for _, b := range serverBinaries {
		if _, err := os.Stat(b); err != nil {
			missing = append(missing, b)
			continue
		}
		p.Files = append(p.Files, File{Dest: b, Src: b, Mode: 0o755})
		if err := sharedLibs(b, libs); err != nil {
			return fmt.Errorf("%s: %w", b, err)
		}
	}
	if len(missing) > 0 {
		log("server workloads will fail in the guest: %s missing on the host (make server-deps)", strings.Join(missing, " "))
	}
	for l := range libs {
		if !slices.ContainsFunc(p.Files, func(f File) bool { return f.Dest == l }) {
			p.Files = append(p.Files, File{Dest: l, Src: l, Mode: 0o755})
		}
	}
	for _, f := range []string{"/etc/passwd", "/etc/group"} {
		p.Files = append(p.Files, File{Dest: f, Src: f, Mode: 0o644})
	}
	return nil
}

var libDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}

// sharedLibs adds the interpreter and the shared libraries an ELF file
// needs, transitively, to libs (host paths, kept at the same path in the
// guest).
func sharedLibs(path string, libs map[string]bool) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, pr := range f.Progs {
		if pr.Type == elf.PT_INTERP {
			b := make([]byte, pr.Filesz)
			if _, err := pr.ReadAt(b, 0); err != nil {
				return err
			}
			libs[strings.TrimRight(string(b), "\x00")] = true
		}
	}
	needed, err := f.ImportedLibraries()
	if err != nil {
		return nil // static
	}
	for _, n := range needed {
		found := ""
		for _, d := range libDirs {
			if _, err := os.Stat(filepath.Join(d, n)); err == nil {
				found = filepath.Join(d, n)
				break
			}
		}
		if found == "" {
			return fmt.Errorf("shared library %s not found in %v", n, libDirs)
		}
		if !libs[found] {
			libs[found] = true
			if err := sharedLibs(found, libs); err != nil {
				return err
			}
		}
	}
	return nil
}

// WriteInitramfs packs the payload, the kernel's modules and the guest's
// configuration into a newc archive at path.
func WriteInitramfs(path string, p *Payload, modules []string, cfg []byte) (int64, error) {
	out, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer out.Close()
	w := initramfs.NewWriter(out)
	w.CharDev("/dev/console", 0o600, 5, 1)
	w.CharDev("/dev/null", 0o666, 1, 3)
	for _, d := range []string{"/proc", "/sys", "/tmp", "/run", "/root", guest.SuiteDir} {
		w.Dir(d, 0o755)
	}
	for _, f := range p.Files {
		if err := w.CopyFile(f.Dest, f.Src, f.Mode); err != nil {
			return 0, err
		}
	}
	for _, m := range modules {
		if err := w.CopyFile(guest.ModulesDir+"/"+filepath.Base(m), m, 0o644); err != nil {
			return 0, err
		}
	}
	if err := w.File(guest.ConfigPath, 0o644, cfg); err != nil {
		return 0, err
	}
	if err := w.Close(); err != nil {
		return 0, err
	}
	return w.Size(), out.Close()
}
