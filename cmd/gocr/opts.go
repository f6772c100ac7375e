package main

import (
	"fmt"
	"strings"
)

// option is one command-line option spelled the way criu spells it: a
// short name (-t), a long name (--tree), and whether it takes a value.
type option struct {
	short, long string
	value       bool
	help        string
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
// form only.
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
				return p, fmt.Errorf("%s: unknown option --%s", cmd, name)
			}
			if o.value && !hasVal && o.long != "verbosity" {
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
				return p, fmt.Errorf("%s: unknown option %s", cmd, a[:2])
			}
			val := a[2:]
			if o.value && val == "" && o.long != "verbosity" {
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
	return b.String()
}
