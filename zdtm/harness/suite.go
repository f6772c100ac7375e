package harness

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Config is the suite's configuration, read from the environment that
// `make zdtm` sets from T=, F=, ENGINE=, MODE= and EXTERNAL=.
type Config struct {
	Engine   string         // ZDTM_ENGINE: gocr, none, external:CMD
	Tests    *regexp.Regexp // ZDTM_TESTS: which workloads; nil for all
	Flavors  []string       // ZDTM_FLAVORS: h,ns,uns
	Modes    []string       // ZDTM_MODES: plain,leave-running,iter3
	External []string       // ZDTM_EXTERNAL: ';'-separated command lines of zdtm-protocol tests
	Results  string         // ZDTM_RESULTS: where runs keep failing specs
}

// ConfigFromEnv reads Config; it fails on values it does not understand
// rather than running something other than what was asked.
func ConfigFromEnv() (Config, error) {
	c := Config{
		Engine:  os.Getenv("ZDTM_ENGINE"),
		Flavors: splitList(os.Getenv("ZDTM_FLAVORS")),
		Modes:   splitList(os.Getenv("ZDTM_MODES")),
		Results: os.Getenv("ZDTM_RESULTS"),
	}
	if c.Engine == "" {
		c.Engine = "gocr"
	}
	if t := os.Getenv("ZDTM_TESTS"); t != "" {
		re, err := regexp.Compile(t)
		if err != nil {
			return c, fmt.Errorf("ZDTM_TESTS (T=): %w", err)
		}
		c.Tests = re
	}
	if len(c.Flavors) == 0 {
		c.Flavors = allFlavors
	}
	for _, f := range c.Flavors {
		if !slices.Contains(allFlavors, f) {
			return c, fmt.Errorf("ZDTM_FLAVORS (F=): unknown flavor %q, want some of %v", f, allFlavors)
		}
	}
	if len(c.Modes) == 0 {
		c.Modes = AllModes
		if c.Engine == "none" {
			// Without a checkpoint every mode is the same run.
			c.Modes = []string{ModePlain}
		}
	}
	for _, m := range c.Modes {
		if !slices.Contains(AllModes, m) {
			return c, fmt.Errorf("ZDTM_MODES (MODE=): unknown mode %q, want some of %v", m, AllModes)
		}
	}
	for _, e := range strings.Split(os.Getenv("ZDTM_EXTERNAL"), ";") {
		if e = strings.TrimSpace(e); e != "" {
			c.External = append(c.External, e)
		}
	}
	if c.Results == "" {
		c.Results = filepath.Join(os.TempDir(), "gocr-zdtm")
	}
	return c, nil
}

func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
}

// Selected reports whether a workload is to run: it matches T=, and a
// workload flagged noauto runs only when T= names it.
func (c Config) Selected(w Workload) bool {
	if c.Tests != nil {
		return c.Tests.MatchString(w.Name)
	}
	return !w.Desc.HasFlag("noauto")
}

// LoadDescs parses every NAME.desc in fsys (a directory of descriptors).
func LoadDescs(fsys fs.FS) (map[string]Desc, error) {
	names, err := fs.Glob(fsys, "*.desc")
	if err != nil {
		return nil, err
	}
	out := map[string]Desc{}
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		d, err := ParseDesc(n, string(b))
		if err != nil {
			return nil, err
		}
		out[strings.TrimSuffix(n, ".desc")] = d
	}
	return out, nil
}

// ExternalWorkload makes a Workload of a zdtm-protocol test given by its
// command line; its descriptor is BINARY.desc beside it when there is one,
// as in CRIU's tree. External tests run in the h flavor only: gocr's ns
// flavors are set up by gocr's own workload library.
func ExternalWorkload(cmdline string) (Workload, error) {
	cmd := strings.Fields(cmdline)
	w := Workload{Name: "ext/" + filepath.Base(cmd[0]), Command: cmd, Desc: Desc{Timeout: DefaultTimeout, Flavors: []string{"h"}}}
	if b, err := os.ReadFile(cmd[0] + ".desc"); err == nil {
		d, err := ParseDesc(cmd[0]+".desc", string(b))
		if err != nil {
			return w, err
		}
		d.Flavors = []string{"h"}
		w.Desc = d
	}
	return w, nil
}
