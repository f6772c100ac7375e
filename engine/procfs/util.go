package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// path builds /proc/PID/NAME; kept in one place so every error names the
// same file the reader opened.
func path(pid int, name string) string {
	return "/proc/" + strconv.Itoa(pid) + "/" + name
}

// readFile reads a whole /proc file. os.ReadFile copes with the size 0 that
// /proc reports for everything.
func readFile(pid int, name string) ([]byte, error) {
	b, err := os.ReadFile(path(pid, name))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path(pid, name), err)
	}
	return b, nil
}

// lines walks b line by line without allocating, giving 1-based numbers. A
// final line without a newline is still reported.
func lines(b []byte, fn func(n int, line []byte) error) error {
	n := 0
	for len(b) > 0 {
		n++
		i := bytes.IndexByte(b, '\n')
		var line []byte
		if i < 0 {
			line, b = b, nil
		} else {
			line, b = b[:i], b[i+1:]
		}
		if err := fn(n, line); err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
	}
	return nil
}

var errSyntax = errors.New("syntax error")

// parseHex parses a hexadecimal number with no prefix and no sign, without
// allocating, rejecting overflow.
func parseHex(b []byte) (uint64, error) {
	if len(b) == 0 || len(b) > 16 {
		return 0, fmt.Errorf("bad hex number %q: %w", b, errSyntax)
	}
	var v uint64
	for _, c := range b {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, fmt.Errorf("bad hex number %q: %w", b, errSyntax)
		}
		v = v<<4 | uint64(d)
	}
	return v, nil
}

// parseDec parses an unsigned decimal number without allocating.
func parseDec(b []byte) (uint64, error) {
	if len(b) == 0 || len(b) > 20 {
		return 0, fmt.Errorf("bad number %q: %w", b, errSyntax)
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("bad number %q: %w", b, errSyntax)
		}
		d := uint64(c - '0')
		if v > (^uint64(0)-d)/10 {
			return 0, fmt.Errorf("number %q overflows: %w", b, errSyntax)
		}
		v = v*10 + d
	}
	return v, nil
}

// parseInt parses a signed decimal number ("-1" appears in stat's tpgid).
func parseInt(s string) (int64, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad number %q: %w", s, errSyntax)
	}
	return v, nil
}

// parseUint parses an unsigned number in the given base.
func parseUint(s string, base int) (uint64, error) {
	v, err := strconv.ParseUint(s, base, 64)
	if err != nil {
		return 0, fmt.Errorf("bad number %q: %w", s, errSyntax)
	}
	return v, nil
}

// unescapeOctal undoes the kernel's mangling of mountinfo paths, where space,
// tab, newline and backslash are written as \040, \011, \012, \134. Sequences
// that are not a backslash and three octal digits are kept as they are.
func unescapeOctal(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && isOctal3(s[i+1:]) {
			out = append(out, (s[i+1]-'0')<<6|(s[i+2]-'0')<<3|(s[i+3]-'0'))
			i += 3
			continue
		}
		out = append(out, s[i])
	}
	return string(out)
}

func isOctal3(s string) bool {
	if len(s) < 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if s[i] < '0' || s[i] > '7' {
			return false
		}
	}
	return s[0] <= '3' // fits in a byte
}
