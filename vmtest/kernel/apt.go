package kernel

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

// Keyring signs every suite vmtest reads; it comes with Debian's
// debian-archive-keyring package.
const Keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

// Suite is one Debian suite, e.g. {"http://deb.debian.org/debian", "bookworm"}.
type Suite struct {
	Mirror string
	Name   string
}

// apt runs apt-get and apt-cache with a private configuration: its own
// sources list, package lists and cache under dir, so the system's apt
// sources and state are never read nor changed.
type apt struct {
	suite Suite
	dir   string
	log   func(format string, args ...any)
}

func newApt(cacheDir string, s Suite, log func(string, ...any)) (*apt, error) {
	a := &apt{suite: s, dir: filepath.Join(cacheDir, "apt", s.Name), log: log}
	for _, d := range []string{"lists/partial", "cache/archives/partial"} {
		if err := os.MkdirAll(filepath.Join(a.dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	line := fmt.Sprintf("deb [signed-by=%s] %s %s main\n", Keyring, s.Mirror, s.Name)
	if err := os.WriteFile(filepath.Join(a.dir, "sources.list"), []byte(line), 0o644); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *apt) opts() []string {
	return []string{
		"-o", "Dir::Etc::SourceList=" + filepath.Join(a.dir, "sources.list"),
		"-o", "Dir::Etc::SourceParts=-",
		"-o", "Dir::Etc::Preferences=/dev/null",
		"-o", "Dir::Etc::PreferencesParts=-",
		"-o", "Dir::State::Lists=" + filepath.Join(a.dir, "lists"),
		"-o", "Dir::State::Status=/dev/null",
		"-o", "Dir::Cache=" + filepath.Join(a.dir, "cache"),
		"-o", "APT::Sandbox::User=root",
		"-o", "Acquire::Languages=none",
		"-o", "APT::Architecture=amd64",
		"-o", "APT::Architectures=amd64",
	}
}

func (a *apt) run(ctx context.Context, dir, tool string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, tool, append(a.opts(), args...)...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s (suite %s): %v\n%s", tool, strings.Join(args, " "), a.suite.Name, err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// listsAge is how old the suite's package lists are; a large value when
// there are none.
func (a *apt) listsAge() time.Duration {
	m, _ := filepath.Glob(filepath.Join(a.dir, "lists", "*_InRelease"))
	if len(m) == 0 {
		return 1 << 62
	}
	st, err := os.Stat(m[0])
	if err != nil {
		return 1 << 62
	}
	return time.Since(st.ModTime())
}

// update refreshes the package lists unless they are younger than
// maxAge, so a second run within maxAge touches no network.
func (a *apt) update(ctx context.Context, maxAge time.Duration) error {
	if age := a.listsAge(); age < maxAge {
		return nil
	}
	a.log("apt-get update (suite %s, private lists in %s)", a.suite.Name, a.dir)
	if _, err := a.run(ctx, "", "apt-get", "-q", "update"); err != nil {
		return err
	}
	// apt keeps the file's own date; make the age ours.
	now := time.Now()
	m, _ := filepath.Glob(filepath.Join(a.dir, "lists", "*_InRelease"))
	for _, f := range m {
		os.Chtimes(f, now, now)
	}
	return nil
}

// show returns the control fields of the candidate version of pkg; nil
// when the suite has no such package.
func (a *apt) show(ctx context.Context, pkg string) (map[string]string, error) {
	out, err := a.run(ctx, "", "apt-cache", "show", "--no-all-versions", pkg)
	if err != nil {
		if strings.Contains(err.Error(), "No packages found") || strings.Contains(err.Error(), "Unable to locate") {
			return nil, nil
		}
		return nil, err
	}
	return parseControl(out), nil
}

// download fetches pkg=version as a .deb into dir and returns its path.
func (a *apt) download(ctx context.Context, dir, pkg, version string) (string, error) {
	a.log("apt-get download %s=%s (suite %s)", pkg, version, a.suite.Name)
	if _, err := a.run(ctx, dir, "apt-get", "-q", "download", pkg+"="+version); err != nil {
		return "", err
	}
	m, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
	if len(m) != 1 {
		return "", fmt.Errorf("apt-get download %s: expected one .deb in %s, found %v", pkg, dir, m)
	}
	return m[0], nil
}

// parseControl reads the first stanza of Debian control text.
func parseControl(s string) map[string]string {
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

// depends lists the package names of a Depends field, alternatives
// flattened, versions dropped.
func depends(field string) []string {
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
