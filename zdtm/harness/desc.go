package harness

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Desc is a workload's descriptor, read from NAME.desc in CRIU's syntax (a
// Python dict literal with string values), so CRIU's own test descriptors
// are understood unchanged:
//
//	{'flavor': 'h ns', 'flags': 'suid excl', 'feature': 'pagemap-scan', 'timeout': '60'}
type Desc struct {
	Flavors  []string // flavors the workload can run in; all when empty
	Flags    []string // suid, excl, crfail, noauto, reqcr (checks what only a restore does: skipped with engine none), ...
	Features []string // kernel features it needs (names of `gocr check`)
	Opts     []string // extra engine options for dump and restore
	// DumpOpts and RestoreOpts are options of one of the two only
	// (gocr's keys 'dopts' and 'ropts'); "{dirname}" in them is the
	// workload's --dirname, e.g. for --external mnt[{dirname}/m]:KEY.
	DumpOpts, RestoreOpts []string
	// Modes are the modes the workload makes sense in (gocr's key
	// 'modes'); all when empty. A workload whose state is changed on
	// purpose by the restore (--tcp-close) has no leave-running mode.
	Modes   []string
	Timeout time.Duration // the whole spec; DefaultTimeout when not given
	Arch    string        // only run on this architecture when set
}

// DefaultTimeout bounds a spec whose descriptor gives no timeout.
const DefaultTimeout = 60 * time.Second

// Flavors a workload runs in.
var allFlavors = []string{"h", "ns", "uns"}

// HasFlag reports whether the descriptor carries a flag such as "crfail".
func (d Desc) HasFlag(f string) bool { return slices.Contains(d.Flags, f) }

// RunsIn reports whether the workload supports the flavor.
func (d Desc) RunsIn(flavor string) bool {
	return len(d.Flavors) == 0 || slices.Contains(d.Flavors, flavor)
}

// ParseDesc parses a descriptor; name is used in error messages.
func ParseDesc(name, text string) (Desc, error) {
	kv, err := parseDict(text)
	if err != nil {
		return Desc{}, fmt.Errorf("descriptor %s: %w", name, err)
	}
	d := Desc{Timeout: DefaultTimeout}
	for k, v := range kv {
		switch k {
		case "flavor":
			d.Flavors = strings.Fields(v)
			for _, f := range d.Flavors {
				if !slices.Contains(allFlavors, f) {
					return Desc{}, fmt.Errorf("descriptor %s: flavor %q: want one of %v", name, f, allFlavors)
				}
			}
		case "flags":
			d.Flags = strings.Fields(v)
		case "feature":
			d.Features = strings.Fields(v)
		case "opts":
			d.Opts = strings.Fields(v)
		case "dopts":
			d.DumpOpts = strings.Fields(v)
		case "ropts":
			d.RestoreOpts = strings.Fields(v)
		case "modes":
			d.Modes = strings.Fields(v)
		case "timeout":
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n <= 0 {
				return Desc{}, fmt.Errorf("descriptor %s: timeout %q: want a positive number of seconds", name, v)
			}
			d.Timeout = time.Duration(n) * time.Second
		case "arch":
			d.Arch = strings.TrimSpace(v)
		default:
			// CRIU's descriptors carry more keys (deps, sysctl, ...) that
			// do not change how gocr's harness runs a test.
		}
	}
	return d, nil
}

// parseDict reads {'key': 'value', "key2": "value2"} with string values
// only; an empty input is an empty descriptor.
func parseDict(s string) (map[string]string, error) {
	p := &dictParser{s: s}
	out := map[string]string{}
	p.space()
	if p.eof() {
		return out, nil
	}
	if !p.eat('{') {
		return nil, p.errorf("want '{'")
	}
	for {
		p.space()
		if p.eat('}') {
			break
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		p.space()
		if !p.eat(':') {
			return nil, p.errorf("want ':' after key %q", k)
		}
		p.space()
		v, err := p.str()
		if err != nil {
			return nil, err
		}
		if _, dup := out[k]; dup {
			return nil, p.errorf("key %q given twice", k)
		}
		out[k] = v
		p.space()
		if p.eat(',') {
			continue
		}
		p.space()
		if !p.eat('}') {
			return nil, p.errorf("want ',' or '}'")
		}
		break
	}
	p.space()
	if !p.eof() {
		return nil, p.errorf("trailing text")
	}
	return out, nil
}

type dictParser struct {
	s   string
	pos int
}

func (p *dictParser) eof() bool { return p.pos >= len(p.s) }

func (p *dictParser) eat(c byte) bool {
	if !p.eof() && p.s[p.pos] == c {
		p.pos++
		return true
	}
	return false
}

func (p *dictParser) space() {
	for !p.eof() {
		switch c := p.s[p.pos]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			p.pos++
		case c == '#': // a Python comment runs to the end of the line
			for !p.eof() && p.s[p.pos] != '\n' {
				p.pos++
			}
		default:
			return
		}
	}
}

// str reads a quoted string; adjacent literals concatenate as in Python.
func (p *dictParser) str() (string, error) {
	var b strings.Builder
	n := 0
	for {
		if p.eof() || (p.s[p.pos] != '\'' && p.s[p.pos] != '"') {
			if n == 0 {
				return "", p.errorf("want a quoted string")
			}
			return b.String(), nil
		}
		q := p.s[p.pos]
		p.pos++
		for {
			if p.eof() {
				return "", p.errorf("unterminated string")
			}
			c := p.s[p.pos]
			p.pos++
			if c == q {
				break
			}
			if c == '\\' && !p.eof() {
				c = p.s[p.pos]
				p.pos++
			}
			b.WriteByte(c)
		}
		n++
		p.space()
	}
}

func (p *dictParser) errorf(format string, args ...any) error {
	return fmt.Errorf("offset %d: %s", p.pos, fmt.Sprintf(format, args...))
}
