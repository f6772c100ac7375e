package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/gocr/gocr/internal/debapt"
)

// The source package CRIU comes from: Debian sid's criu (4.2.1 when this
// was written), through a private apt configuration with a deb-src line.
var criuSuite = debapt.Suite{Mirror: "http://deb.debian.org/debian", Name: "sid"}

// defaultCacheDir is $CRIUCACHE, else $XDG_CACHE_HOME/gocr/criu, else
// $HOME/.cache/gocr/criu.
func defaultCacheDir() string {
	if d := os.Getenv("CRIUCACHE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "gocr", "criu")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "gocr", "criu")
}

// source is one fetched (and patched) CRIU tree in the cache.
type source struct {
	Version string // Debian's version, e.g. 4.2.1-1
	Dir     string // <cache>/<version>
	Tree    string // <cache>/<version>/criu-<upstream>
}

// fetchSource returns the newest criu source package of sid, unpacked
// and patched in the cache; one already there is reused without any
// download. Without network the newest cached tree is used.
func fetchSource(ctx context.Context, cache string, maxListAge time.Duration) (*source, error) {
	if _, err := os.Stat(debapt.Keyring); err != nil {
		return nil, fmt.Errorf("Debian's archive keyring is needed (apt-get install debian-archive-keyring): %w", err)
	}
	a, err := debapt.New(filepath.Join(cache, "apt", criuSuite.Name), criuSuite, true, logf)
	if err != nil {
		return nil, err
	}
	version := ""
	err = a.Update(ctx, maxListAge)
	if err == nil {
		var m map[string]string
		m, err = a.ShowSource(ctx, "criu")
		if err == nil && m == nil {
			err = fmt.Errorf("suite %s has no source package criu", criuSuite.Name)
		}
		if err == nil {
			version = m["Version"]
		}
	}
	if err != nil {
		s := newestCached(cache)
		if s == nil {
			return nil, fmt.Errorf("criu source: %w", err)
		}
		logf("warning: %v; using the cached CRIU %s", err, s.Version)
		return s, nil
	}
	dir := filepath.Join(cache, version)
	if s := cached(dir, version); s != nil {
		return s, nil
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, err
	}
	tree, debianPatched, err := a.Source(ctx, tmp, "criu", version)
	if err != nil {
		return nil, err
	}
	applied, err := patchSource(tree)
	if err != nil {
		return nil, err
	}
	note := "Debian's patches applied"
	if !debianPatched {
		note = "upstream tarball only: Debian's packaging could not be fetched"
	}
	stamp := fmt.Sprintf("criu %s from %s %s (%s)\ngocr patches: %s\n", version, criuSuite.Mirror, criuSuite.Name, note, strings.Join(applied, ", "))
	if err := os.WriteFile(filepath.Join(tmp, "fetched"), []byte(stamp), 0o644); err != nil {
		return nil, err
	}
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return nil, err
	}
	s := cached(dir, version)
	if s == nil {
		return nil, fmt.Errorf("criu %s: the cache %s is incomplete after unpacking", version, dir)
	}
	return s, nil
}

// cached returns the tree in dir if it was completely fetched.
func cached(dir, version string) *source {
	if _, err := os.Stat(filepath.Join(dir, "fetched")); err != nil {
		return nil
	}
	m, _ := filepath.Glob(filepath.Join(dir, "criu-*", "test", "zdtm.py"))
	if len(m) != 1 {
		return nil
	}
	return &source{Version: version, Dir: dir, Tree: filepath.Dir(filepath.Dir(m[0]))}
}

// newestCached is the cached tree with the highest version, nil if none.
func newestCached(cache string) *source {
	m, _ := filepath.Glob(filepath.Join(cache, "*", "fetched"))
	var all []*source
	for _, f := range m {
		d := filepath.Dir(f)
		if s := cached(d, filepath.Base(d)); s != nil {
			all = append(all, s)
		}
	}
	if len(all) == 0 {
		return nil
	}
	sort.Slice(all, func(i, j int) bool { return debVersionLess(all[i].Version, all[j].Version) })
	return all[len(all)-1]
}

// debVersionLess compares two Debian versions with dpkg's own rules.
func debVersionLess(a, b string) bool {
	return exec.Command("dpkg", "--compare-versions", a, "lt", b).Run() == nil
}
