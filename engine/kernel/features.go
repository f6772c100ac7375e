package kernel

import (
	"fmt"
	"strings"
)

// Feature is the result of one probe.
type Feature struct {
	Name     string // short, stable, kebab-case: "pagemap-scan"
	Found    bool
	Detail   string // what the probe saw, e.g. "ioctl: ENOTTY"
	Since    string // kernel version that added it, e.g. "6.7"
	Cost     string // what gocr loses without it
	Optional bool   // gocr works without it, with the Cost
}

// Features is the outcome of Probe: every feature, in a fixed order, and the
// kernel they were probed on. Keep the value; probing again is wasted work.
type Features struct {
	Release string  // uname release
	Kernel  Version // parsed from Release
	List    []Feature
}

// Lookup finds a feature by its name or by CRIU's name for it (criu's zdtm
// asks `check --feature get_rseq_conf`, for instance).
func (f Features) Lookup(name string) (Feature, bool) {
	if canon, ok := criuNames[name]; ok {
		name = canon
	}
	for _, ft := range f.List {
		if ft.Name == name {
			return ft, true
		}
	}
	return Feature{}, false
}

// Has reports whether the named feature was found.
func (f Features) Has(name string) bool {
	ft, ok := f.Lookup(name)
	return ok && ft.Found
}

// Missing lists the features not found.
func (f Features) Missing() []Feature {
	var out []Feature
	for _, ft := range f.List {
		if !ft.Found {
			out = append(out, ft)
		}
	}
	return out
}

// NotSupportedError says the kernel lacks a feature the caller needs.
type NotSupportedError struct {
	Feature string
	Since   string
	Detail  string
}

func (e *NotSupportedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "kernel lacks %s", e.Feature)
	if e.Since != "" {
		fmt.Fprintf(&b, " (added in %s)", e.Since)
	}
	if e.Detail != "" {
		fmt.Fprintf(&b, ": %s", e.Detail)
	}
	return b.String()
}

// Require returns nil when the named feature was found, and a
// *NotSupportedError otherwise (also for a name no probe knows, so a typo
// fails loudly instead of passing).
func Require(f Features, name string) error {
	ft, ok := f.Lookup(name)
	if !ok {
		return &NotSupportedError{Feature: name, Detail: "no such feature is probed"}
	}
	if ft.Found {
		return nil
	}
	return &NotSupportedError{Feature: ft.Name, Since: ft.Since, Detail: ft.Detail}
}

// Check runs the probe of one feature alone, now, and answers as Require
// does: for a caller that has no Features at hand and needs one cheap
// probe (those of the mount API touch no mount), not the whole table.
func Check(name string) error {
	for _, p := range probes {
		if p.name == name {
			found, detail := p.fn(&probeEnv{})
			f := Features{List: []Feature{{Name: p.name, Found: found, Detail: detail, Since: p.since, Cost: p.cost, Optional: p.optional}}}
			return Require(f, name)
		}
	}
	return &NotSupportedError{Feature: name, Detail: "no such feature is probed"}
}

// Names lists every feature name Probe reports, in order.
func Names() []string {
	out := make([]string, len(probes))
	for i, p := range probes {
		out[i] = p.name
	}
	return out
}

// criuNames maps CRIU's `check --feature` names to ours, for the ones
// that are the same kernel facility and mean the same for gocr (criu.go
// answers every one of CRIU's names).
var criuNames = map[string]string{
	"mnt_id":               "fdinfo-mnt-id",
	"timens":               "time-ns",
	"clone3_set_tid":       "clone3-set-tid",
	"move_mount_set_group": "move-mount-set-group",
	"get_rseq_conf":        "ptrace-rseq-config",
	"pagemap_scan":         "pagemap-scan",
}

// Probe runs every probe once and returns what it found. It never fails:
// a probe that cannot decide reports the feature missing and says why in
// Detail. It leaves nothing behind (fds closed, mappings unmapped, the
// throwaway child killed and reaped).
func Probe() Features {
	rel, v, err := Running()
	f := Features{Release: rel, Kernel: v}
	if err != nil && f.Release == "" {
		f.Release = err.Error()
	}
	env := &probeEnv{}
	for _, p := range probes {
		found, detail := p.fn(env)
		f.List = append(f.List, Feature{
			Name: p.name, Found: found, Detail: detail,
			Since: p.since, Cost: p.cost, Optional: p.optional,
		})
	}
	return f
}
