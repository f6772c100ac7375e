package procfs

import (
	"encoding/binary"
	"fmt"
)

// Auxv reads /proc/PID/auxv as the flat list of (type, value) words that
// PR_SET_MM_MAP's auxv takes, up to and including the AT_NULL pair.
func Auxv(pid int) ([]uint64, error) {
	b, err := readFile(pid, "auxv")
	if err != nil {
		return nil, err
	}
	a, err := ParseAuxv(b)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path(pid, "auxv"), err)
	}
	return a, nil
}

// ParseAuxv decodes native-endian 64-bit words, stopping after AT_NULL.
func ParseAuxv(b []byte) ([]uint64, error) {
	if len(b)%16 != 0 {
		return nil, fmt.Errorf("auxv is %d bytes, not whole pairs: %w", len(b), errSyntax)
	}
	out := make([]uint64, 0, len(b)/8)
	for i := 0; i+16 <= len(b); i += 16 {
		t := binary.NativeEndian.Uint64(b[i:])
		v := binary.NativeEndian.Uint64(b[i+8:])
		out = append(out, t, v)
		if t == 0 {
			break
		}
	}
	return out, nil
}
