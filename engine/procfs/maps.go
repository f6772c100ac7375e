package procfs

import (
	"bytes"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Perms are the four permission letters of a maps line.
type Perms uint8

// Permission bits. PermShared is set for "s" (MAP_SHARED) and clear for "p".
const (
	PermRead Perms = 1 << iota
	PermWrite
	PermExec
	PermShared
)

// String renders the perms the way maps shows them, e.g. "rw-p".
func (p Perms) String() string {
	b := []byte("---p")
	if p&PermRead != 0 {
		b[0] = 'r'
	}
	if p&PermWrite != 0 {
		b[1] = 'w'
	}
	if p&PermExec != 0 {
		b[2] = 'x'
	}
	if p&PermShared != 0 {
		b[3] = 's'
	}
	return string(b)
}

// Prot converts to PROT_* bits for mmap/mprotect on restore.
func (p Perms) Prot() int {
	prot := unix.PROT_NONE
	if p&PermRead != 0 {
		prot |= unix.PROT_READ
	}
	if p&PermWrite != 0 {
		prot |= unix.PROT_WRITE
	}
	if p&PermExec != 0 {
		prot |= unix.PROT_EXEC
	}
	return prot
}

// VMA is one line of /proc/PID/maps; Flags is filled only by MapsWithFlags.
type VMA struct {
	Start, End   uint64
	Perms        Perms
	Offset       uint64
	Major, Minor uint32
	Inode        uint64
	// Path is the name with " (deleted)" removed and "\012" turned back into
	// a newline. Empty for anonymous memory; "[heap]" and friends for
	// special mappings.
	Path    string
	Deleted bool
	Flags   VmFlags
	// UnknownFlags are the VmFlags mnemonics of smaps this package does
	// not know, space-separated (a newer kernel's): the dump refuses them
	// rather than lose what they stand for.
	UnknownFlags string
}

// Len is the size of the mapping in bytes.
func (v VMA) Len() uint64 { return v.End - v.Start }

// MappingKind classifies a VMA by its name, because the dump treats heap,
// stack, vdso/vvar and file mappings differently.
type MappingKind int

// Mapping kinds. MapSpecial is any other bracketed name, e.g. [uprobes].
const (
	MapFile MappingKind = iota
	MapAnon
	MapHeap
	MapStack
	MapVDSO
	MapVVAR
	MapVVARVclock
	MapVsyscall
	MapSpecial
)

var kindNames = [...]string{"file", "anon", "heap", "stack", "vdso", "vvar", "vvar_vclock", "vsyscall", "special"}

func (k MappingKind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("MappingKind(%d)", int(k))
}

// Kind classifies the mapping. Named anonymous memory ([anon:NAME], from
// PR_SET_VMA_ANON_NAME) is MapAnon; [anon_shmem:NAME] is shared anonymous
// memory and is MapAnon too (check PermShared). Old kernels' [stack:TID]
// is MapStack.
func (v VMA) Kind() MappingKind {
	p := v.Path
	switch {
	case p == "":
		return MapAnon
	case p[0] != '[' || v.Deleted:
		return MapFile
	case p == "[heap]":
		return MapHeap
	case p == "[stack]" || strings.HasPrefix(p, "[stack:"):
		return MapStack
	case p == "[vdso]":
		return MapVDSO
	case p == "[vvar]":
		return MapVVAR
	case p == "[vvar_vclock]":
		return MapVVARVclock
	case p == "[vsyscall]":
		return MapVsyscall
	case strings.HasPrefix(p, "[anon:") || strings.HasPrefix(p, "[anon_shmem:"):
		return MapAnon
	}
	return MapSpecial
}

// Maps reads /proc/PID/maps.
func Maps(pid int) ([]VMA, error) {
	b, err := readFile(pid, "maps")
	if err != nil {
		return nil, err
	}
	vmas, err := ParseMaps(b)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path(pid, "maps"), err)
	}
	return vmas, nil
}

// ParseMaps parses the text of a maps file.
func ParseMaps(b []byte) ([]VMA, error) {
	vmas := make([]VMA, 0, bytes.Count(b, []byte{'\n'})+1)
	err := lines(b, func(_ int, line []byte) error {
		if len(line) == 0 {
			return nil
		}
		v, err := parseMapsLine(line)
		if err != nil {
			return err
		}
		vmas = append(vmas, v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return vmas, nil
}

const deletedSuffix = " (deleted)"

// parseMapsLine parses "start-end perms offset maj:min inode   path". The
// path is everything after the padding that follows the inode, so names
// with spaces survive.
func parseMapsLine(line []byte) (VMA, error) {
	var v VMA
	field := func() []byte {
		i := bytes.IndexByte(line, ' ')
		var f []byte
		if i < 0 {
			f, line = line, nil
		} else {
			f, line = line[:i], line[i+1:]
		}
		return f
	}
	rng, perms, off, dev, ino := field(), field(), field(), field(), field()

	dash := bytes.IndexByte(rng, '-')
	if dash < 0 {
		return v, fmt.Errorf("bad address range %q: %w", rng, errSyntax)
	}
	var err error
	if v.Start, err = parseHex(rng[:dash]); err != nil {
		return v, err
	}
	if v.End, err = parseHex(rng[dash+1:]); err != nil {
		return v, err
	}
	if v.End < v.Start {
		return v, fmt.Errorf("range %q ends before it starts: %w", rng, errSyntax)
	}
	if v.Perms, err = parsePerms(perms); err != nil {
		return v, err
	}
	if v.Offset, err = parseHex(off); err != nil {
		return v, err
	}
	colon := bytes.IndexByte(dev, ':')
	if colon < 0 {
		return v, fmt.Errorf("bad device %q: %w", dev, errSyntax)
	}
	maj, err := parseHex(dev[:colon])
	if err != nil {
		return v, err
	}
	min, err := parseHex(dev[colon+1:])
	if err != nil {
		return v, err
	}
	if maj > 0xfff || min > 0xfffff {
		return v, fmt.Errorf("device %q out of range: %w", dev, errSyntax)
	}
	v.Major, v.Minor = uint32(maj), uint32(min)
	if v.Inode, err = parseDec(ino); err != nil {
		return v, err
	}
	name := string(bytes.TrimLeft(line, " "))
	if strings.HasSuffix(name, deletedSuffix) {
		v.Deleted = true
		name = name[:len(name)-len(deletedSuffix)]
	}
	// maps escapes only the newline, so only "\012" is undone: a literal
	// backslash in a file name is printed as is.
	v.Path = strings.ReplaceAll(name, `\012`, "\n")
	return v, nil
}

func parsePerms(b []byte) (Perms, error) {
	if len(b) != 4 {
		return 0, fmt.Errorf("bad perms %q: %w", b, errSyntax)
	}
	var p Perms
	for i, want := range [3]byte{'r', 'w', 'x'} {
		switch b[i] {
		case want:
			p |= 1 << i
		case '-':
		default:
			return 0, fmt.Errorf("bad perms %q: %w", b, errSyntax)
		}
	}
	switch b[3] {
	case 's':
		p |= PermShared
	case 'p':
	default:
		return 0, fmt.Errorf("bad perms %q: %w", b, errSyntax)
	}
	return p, nil
}
