// Package debapt runs apt-get and apt-cache against one Debian suite with a
// private configuration: its own sources list, package lists and cache in a
// directory of the caller's, so the system's apt sources and state are never
// read nor changed. vmtest fetches kernels with it, zdtm-criu CRIU's source.
package debapt

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Keyring signs every suite read here; it comes with Debian's
// debian-archive-keyring package.
const Keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

// Suite is one Debian suite, e.g. {"http://deb.debian.org/debian", "bookworm"}.
type Suite struct {
	Mirror string
	Name   string
}

// Apt is a private apt configuration for one suite, kept in Dir.
type Apt struct {
	Suite Suite
	Dir   string
	log   func(format string, args ...any)
}

// New makes (or reuses) the private configuration in dir: a sources.list
// with the suite's binary packages, and its source packages too when src
// is set.
func New(dir string, s Suite, src bool, log func(string, ...any)) (*Apt, error) {
	if log == nil {
		log = func(string, ...any) {}
	}
	a := &Apt{Suite: s, Dir: dir, log: log}
	for _, d := range []string{"lists/partial", "cache/archives/partial"} {
		if err := os.MkdirAll(filepath.Join(a.Dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	line := fmt.Sprintf("deb [signed-by=%s] %s %s main\n", Keyring, s.Mirror, s.Name)
	if src {
		line += fmt.Sprintf("deb-src [signed-by=%s] %s %s main\n", Keyring, s.Mirror, s.Name)
	}
	if err := os.WriteFile(filepath.Join(a.Dir, "sources.list"), []byte(line), 0o644); err != nil {
		return nil, err
	}
	return a, nil
}

// Opts are the apt options that make every tool use the private
// configuration only.
func (a *Apt) Opts() []string {
	return []string{
		"-o", "Dir::Etc::SourceList=" + filepath.Join(a.Dir, "sources.list"),
		"-o", "Dir::Etc::SourceParts=-",
		"-o", "Dir::Etc::Preferences=/dev/null",
		"-o", "Dir::Etc::PreferencesParts=-",
		"-o", "Dir::State::Lists=" + filepath.Join(a.Dir, "lists"),
		"-o", "Dir::State::Status=/dev/null",
		"-o", "Dir::Cache=" + filepath.Join(a.Dir, "cache"),
		"-o", "APT::Sandbox::User=root",
		"-o", "Acquire::Languages=none",
		"-o", "APT::Architecture=amd64",
		"-o", "APT::Architectures=amd64",
	}
}

func (a *Apt) run(ctx context.Context, dir, tool string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, tool, append(a.Opts(), args...)...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s (suite %s): %v\n%s", tool, strings.Join(args, " "), a.Suite.Name, err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// ListsAge is how old the suite's package lists are; a large value when
// there are none.
func (a *Apt) ListsAge() time.Duration {
	m, _ := filepath.Glob(filepath.Join(a.Dir, "lists", "*_InRelease"))
	if len(m) == 0 {
		return 1 << 62
	}
	st, err := os.Stat(m[0])
	if err != nil {
		return 1 << 62
	}
	return time.Since(st.ModTime())
}

// Update refreshes the package lists unless they are younger than
// maxAge, so a second run within maxAge touches no network.
func (a *Apt) Update(ctx context.Context, maxAge time.Duration) error {
	if age := a.ListsAge(); age < maxAge {
		return nil
	}
	a.log("apt-get update (suite %s, private lists in %s)", a.Suite.Name, a.Dir)
	if _, err := a.run(ctx, "", "apt-get", "-q", "update"); err != nil {
		return err
	}
	// apt keeps the file's own date; make the age ours.
	now := time.Now()
	m, _ := filepath.Glob(filepath.Join(a.Dir, "lists", "*_InRelease"))
	for _, f := range m {
		os.Chtimes(f, now, now)
	}
	return nil
}

// Show returns the control fields of the candidate version of pkg; nil
// when the suite has no such package.
func (a *Apt) Show(ctx context.Context, pkg string) (map[string]string, error) {
	out, err := a.run(ctx, "", "apt-cache", "show", "--no-all-versions", pkg)
	if err != nil {
		if strings.Contains(err.Error(), "No packages found") || strings.Contains(err.Error(), "Unable to locate") {
			return nil, nil
		}
		return nil, err
	}
	return ParseControl(out), nil
}

// ShowSource returns the control fields of the newest source package
// called pkg; nil when the suite has none (or no deb-src line).
func (a *Apt) ShowSource(ctx context.Context, pkg string) (map[string]string, error) {
	out, err := a.run(ctx, "", "apt-cache", "showsrc", "--only-source", pkg)
	if err != nil {
		if strings.Contains(err.Error(), "Unable to find") || strings.Contains(err.Error(), "No packages found") {
			return nil, nil
		}
		return nil, err
	}
	if strings.TrimSpace(out) == "" {
		return nil, nil
	}
	return ParseControl(out), nil
}

// Download fetches pkg=version as a .deb into dir and returns its path.
func (a *Apt) Download(ctx context.Context, dir, pkg, version string) (string, error) {
	a.log("apt-get download %s=%s (suite %s)", pkg, version, a.Suite.Name)
	if _, err := a.run(ctx, dir, "apt-get", "-q", "download", pkg+"="+version); err != nil {
		return "", err
	}
	m, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
	if len(m) != 1 {
		return "", fmt.Errorf("apt-get download %s: expected one .deb in %s, found %v", pkg, dir, m)
	}
	return m[0], nil
}

// Source fetches the source package pkg=version into dir and unpacks it
// there with dpkg-source (Debian's patches applied); it returns the
// unpacked tree. When the mirror serves the upstream tarball but not
// Debian's packaging (some mirrors and proxies lag behind for the small
// .debian.tar), the upstream tarball is unpacked alone and patched is
// false.
func (a *Apt) Source(ctx context.Context, dir, pkg, version string) (tree string, patched bool, err error) {
	a.log("apt-get source %s=%s (suite %s) into %s", pkg, version, a.Suite.Name, dir)
	up, _, _ := strings.Cut(version, "-")
	if _, after, ok := strings.Cut(up, ":"); ok {
		up = after
	}
	tree = filepath.Join(dir, pkg+"-"+up)
	_, err = a.run(ctx, dir, "apt-get", "-q", "source", "--only-source", pkg+"="+version)
	if err != nil {
		orig, _ := filepath.Glob(filepath.Join(dir, pkg+"_"+up+".orig.tar.*"))
		if len(orig) != 1 {
			return "", false, err
		}
		a.log("warning: %v; unpacking the upstream tarball %s without Debian's patches", err, filepath.Base(orig[0]))
		os.RemoveAll(tree)
		cmd := exec.CommandContext(ctx, "tar", "-C", dir, "-xf", orig[0])
		if out, terr := cmd.CombinedOutput(); terr != nil {
			return "", false, fmt.Errorf("tar -xf %s: %v\n%s", orig[0], terr, out)
		}
	} else {
		patched = true
	}
	if st, err := os.Stat(tree); err != nil || !st.IsDir() {
		return "", false, fmt.Errorf("apt-get source %s=%s: no tree %s after unpacking", pkg, version, tree)
	}
	return tree, patched, nil
}

// ParseControl reads the first stanza of Debian control text.
func ParseControl(s string) map[string]string {
	f := map[string]string{}
	var last string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if l == "" {
			if len(f) > 0 {
				break
			}
			continue
		}
		if l[0] == ' ' || l[0] == '\t' {
			if last != "" {
				f[last] += "\n" + strings.TrimSpace(l)
			}
			continue
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		last = k
		f[k] = strings.TrimSpace(v)
	}
	return f
}

// Depends lists the package names of a Depends field, alternatives
// flattened, versions dropped.
func Depends(field string) []string {
	var out []string
	for _, d := range strings.Split(field, ",") {
		for _, alt := range strings.Split(d, "|") {
			name, _, _ := strings.Cut(strings.TrimSpace(alt), " ")
			if name != "" {
				out = append(out, name)
			}
		}
	}
	return out
}
