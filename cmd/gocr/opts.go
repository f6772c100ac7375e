package main

import (
	"fmt"
	"slices"
	"strings"
)

// option is one command-line option spelled the way criu spells it: a
// short name (-t), a long name (--tree), and whether it takes a value.
// optional marks criu's optional arguments (-v, -v4, --verbosity=4,
// --manage-cgroups[=MODE]): their value is only ever attached.
type option struct {
	short, long string
	value       bool
	help        string
	optional    bool
}

// unsupported is a criu option whose behaviour gocr does not have yet. It
// is refused, never accepted and ignored, so no state is lost silently.
type unsupported struct {
	short, long string
	value       bool
	optional    bool
	what        string // what it would do, for the message
}

// unsupportedOpts lists criu's options (criu/config.c) that gocr refuses
// on every command. The --no- form of a boolean one asks for what gocr
// does anyway and is accepted.
var unsupportedOpts = []unsupported{
	{"s", "leave-stopped", false, false, "leave the tree stopped after dump or restore"},
	{"S", "restore-sibling", false, false, "restore the root as a sibling of gocr instead of its child"},
	{"", "manage-cgroups", true, true, "checkpoint and restore the tree's cgroups"},
	{"", "cgroup-root", true, false, "move the tree's cgroups under another root"},
	{"", "cgroup-props", true, false, "choose the cgroup properties to checkpoint"},
	{"", "cgroup-props-file", true, false, "choose the cgroup properties to checkpoint"},
	{"", "cgroup-dump-controller", true, false, "choose the cgroup controllers to checkpoint"},
	{"", "cgroup-yard", true, false, "use a prepared cgroup hierarchy"},
	{"", "freeze-cgroup", true, false, "freeze the tree with the cgroup freezer"},
	{"", "link-remap", false, false, "link a deleted file back under a temporary name instead of saving its contents"},
	{"", "ghost-fiemap", false, false, "find a deleted file's data with FIEMAP"},
	{"", "force-irmap", false, false, "resolve the paths of inotify watches by scanning the filesystem"},
	{"", "irmap-scan-path", true, false, "resolve the paths of inotify watches by scanning the filesystem"},
	{"x", "ext-unix-sk", true, true, "checkpoint unix sockets whose peer is outside the tree"},
	{"", "track-mem", false, false, "track memory changes for a later incremental dump"},
	{"", "prev-images-dir", true, false, "dump only the memory changed since a previous dump"},
	{"", "auto-dedup", false, false, "free the pages of parent images a new dump supersedes"},
	{"", "page-server", false, false, "send pages to a page server"},
	{"", "address", true, false, "the page server's address"},
	{"", "port", true, false, "the page server's port"},
	{"", "ps-socket", true, false, "send pages to a page server"},
	{"", "lazy-pages", false, false, "restore memory on demand"},
	{"", "stream", false, false, "stream images through criu-image-streamer"},
	{"", "tls", false, false, "talk to the page server over TLS"},
	{"", "tls-cacert", true, false, "talk to the page server over TLS"},
	{"", "tls-cacrl", true, false, "talk to the page server over TLS"},
	{"", "tls-cert", true, false, "talk to the page server over TLS"},
	{"", "tls-key", true, false, "talk to the page server over TLS"},
	{"", "tls-no-cn-verify", false, false, "talk to the page server over TLS"},
	{"", "action-script", true, false, "run a script at each stage"},
	{"", "evasive-devices", false, false, "reopen a device through another path when its own is gone"},
	{"", "inherit-fd", true, false, "give the tree an fd of gocr's for a resource outside it"},
	{"", "empty-ns", true, false, "make the network namespace empty, for a script to fill"},
	{"", "mntns-compat-mode", false, false, "rebuild mounts with criu's older mount engine"},
	{"M", "ext-mount-map", true, false, "map external mounts (use --external mnt[...]:...)"},
	{"", "enable-external-sharing", false, false, "let mounts share with external ones"},
	{"", "enable-external-masters", false, false, "let mounts be slaves of external ones"},
	{"", "skip-mnt", true, false, "leave a mount out of the dump"},
	{"", "enable-fs", true, false, "dump mounts of filesystems gocr does not know"},
	{"", "lsm-profile", true, false, "restore with another LSM profile"},
	{"", "lsm-mount-context", true, false, "restore mounts with another LSM context"},
	{"", "allow-uprobes", false, false, "checkpoint mappings of uprobes"},
	{"", "pidfd-store", true, false, "keep pidfds of the tree across pre-dumps"},
	{"", "weak-sysctls", false, false, "skip sysctls this kernel lacks"},
	{"", "veth-pair", true, false, "restore a veth pair"},
	{"", "file-validation", true, false, "check restored files by size or build-id"},
	{"", "skip-file-rwx-check", false, false, "restore files whose permissions changed"},
	{"", "cpu-cap", true, true, "record and check the CPU's capabilities"},
	{"L", "libdir", true, false, "load criu plugins"},
	{"", "exec-cmd", false, false, "run a command as the restored tree's parent"},
	{"", "ms", false, false, "print the protocol of a page server migration"},
	{"", "deprecated", false, false, "allow criu's deprecated features"},
	{"", "config", true, false, "read options from a configuration file"},
	{"", "extra", false, false, "check criu's extra kernel features"},
	{"", "experimental", false, false, "check criu's experimental kernel features"},
}

// unsupportedDumpOpts are refused by dump only: criu's dump uses them
// for what gocr's dump lacks, other commands for what gocr does.
var unsupportedDumpOpts = []unsupported{
	{"", "status-fd", true, false, "tell when a lazy-pages dump is ready to serve pages"},
	{"J", "join-ns", true, false, "join existing namespaces: a restore option"},
}

// unsupportedError is the refusal of an option gocr lacks: exit 1 with
// `gocr: --X is not supported yet (what it would do)`.
type unsupportedError struct {
	name, what string
}

func (e *unsupportedError) Error() string {
	return fmt.Sprintf("%s is not supported yet (%s)", e.name, e.what)
}

// parsed holds the options given: long name → values (bools get "").
type parsed struct {
	vals map[string][]string
	args []string // positional arguments
}

func (p parsed) has(long string) bool { _, ok := p.vals[long]; return ok }

func (p parsed) get(long string) string {
	if v := p.vals[long]; len(v) > 0 {
		return v[len(v)-1]
	}
	return ""
}

// parseOpts accepts -t 42, -t42, --tree 42, --tree=42, and for options
// whose value is optional in criu (-v, -v4, --verbosity=4) the attached
// form only. A boolean option X is switched off again by --no-X, as in
// criu; --no-X of an unsupported X asks for what gocr does anyway.
func parseOpts(cmd string, args []string, opts []option) (parsed, error) {
	p := parsed{vals: map[string][]string{}}
	find := func(name string, long bool) *option {
		for i := range opts {
			if (long && opts[i].long == name) || (!long && opts[i].short == name) {
				return &opts[i]
			}
		}
		return nil
	}
	findUnsupported := func(name string, long bool) *unsupported {
		list := unsupportedOpts
		if cmd == "dump" {
			list = slices.Concat(unsupportedDumpOpts, list)
		}
		for i := range list {
			u := &list[i]
			if (long && u.long == name) || (!long && u.short == name) {
				return u
			}
		}
		return nil
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			p.args = append(p.args, args[i+1:]...)
			return p, nil
		case strings.HasPrefix(a, "--"):
			name, val, hasVal := strings.Cut(a[2:], "=")
			o := find(name, true)
			if o == nil {
				if u := findUnsupported(name, true); u != nil {
					return p, &unsupportedError{"--" + name, u.what}
				}
				if neg, ok := strings.CutPrefix(name, "no-"); ok && !hasVal {
					if o := find(neg, true); o != nil && !o.value {
						delete(p.vals, o.long)
						continue
					}
					if u := findUnsupported(neg, true); u != nil && !u.value {
						continue // off is what gocr does
					}
				}
				return p, fmt.Errorf("%s: unknown option --%s", cmd, name)
			}
			if o.value && !hasVal && !o.optional {
				if i+1 >= len(args) {
					return p, fmt.Errorf("%s: option --%s needs a value", cmd, name)
				}
				i++
				val = args[i]
			}
			if !o.value && hasVal {
				return p, fmt.Errorf("%s: option --%s takes no value", cmd, name)
			}
			p.vals[o.long] = append(p.vals[o.long], val)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			o := find(a[1:2], false)
			if o == nil {
				if u := findUnsupported(a[1:2], false); u != nil {
					return p, &unsupportedError{"--" + u.long, u.what}
				}
				return p, fmt.Errorf("%s: unknown option %s", cmd, a[:2])
			}
			val := a[2:]
			if o.value && val == "" && !o.optional {
				if i+1 >= len(args) {
					return p, fmt.Errorf("%s: option -%s needs a value", cmd, o.short)
				}
				i++
				val = args[i]
			}
			if !o.value && val != "" {
				return p, fmt.Errorf("%s: option -%s takes no value", cmd, o.short)
			}
			p.vals[o.long] = append(p.vals[o.long], val)
		default:
			p.args = append(p.args, a)
		}
	}
	return p, nil
}

func usage(cmd string, opts []option) string {
	var b strings.Builder
	fmt.Fprintf(&b, "options of gocr %s:\n", cmd)
	for _, o := range opts {
		name := "    --" + o.long
		if o.short != "" {
			name = "-" + o.short + ", --" + o.long
		}
		if o.value {
			name += " VALUE"
		}
		fmt.Fprintf(&b, "  %-28s %s\n", name, o.help)
	}
	fmt.Fprintf(&b, "refused (not supported yet): ")
	refused := unsupportedOpts
	if cmd == "dump" {
		refused = slices.Concat(unsupportedDumpOpts, refused)
	}
	for i, u := range refused {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("--" + u.long)
	}
	b.WriteString("\n")
	return b.String()
}
