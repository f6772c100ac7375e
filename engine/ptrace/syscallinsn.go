package ptrace

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// syscallInsn is the x86_64 syscall instruction. Any occurrence of these two
// bytes in executable memory will do, even inside another instruction: the
// CPU decodes from wherever rip points.
var syscallInsn = []byte{0x0f, 0x05}

// execMapping is one executable line of /proc/PID/maps.
type execMapping struct {
	start, end uint64
	name       string
}

// FindSyscallInsn returns the address of a syscall instruction already in
// pid's executable memory, so injection never writes into the task's code.
// The [vdso] is preferred (small, always there, never file-backed); other
// executable mappings are searched when it has none.
func FindSyscallInsn(pid int) (uint64, error) {
	maps, err := execMappings(pid)
	if err != nil {
		return 0, err
	}
	for _, vdsoFirst := range []bool{true, false} {
		for _, m := range maps {
			if (m.name == "[vdso]") != vdsoFirst {
				continue
			}
			if a, ok := searchInsn(pid, m); ok {
				return a, nil
			}
		}
	}
	return 0, fmt.Errorf("pid %d: no syscall instruction in any executable mapping", pid)
}

// execMappings parses the executable mappings out of /proc/PID/maps. It is
// a deliberately tiny parser: engine/procfs has the full one.
func execMappings(pid int) ([]execMapping, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/maps")
	if err != nil {
		return nil, fmt.Errorf("read maps of pid %d: %w", pid, err)
	}
	defer f.Close()
	var out []execMapping
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m, ok := parseExecMapping(sc.Text())
		if ok {
			out = append(out, m)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read maps of pid %d: %w", pid, err)
	}
	return out, nil
}

// parseExecMapping parses "start-end perms offset dev inode [name]" and
// keeps it only when perms has x.
func parseExecMapping(line string) (execMapping, bool) {
	f := strings.Fields(line)
	if len(f) < 5 || len(f[1]) < 3 || f[1][2] != 'x' {
		return execMapping{}, false
	}
	lo, hi, ok := strings.Cut(f[0], "-")
	if !ok {
		return execMapping{}, false
	}
	start, err1 := strconv.ParseUint(lo, 16, 64)
	end, err2 := strconv.ParseUint(hi, 16, 64)
	if err1 != nil || err2 != nil || end <= start {
		return execMapping{}, false
	}
	m := execMapping{start: start, end: end}
	if len(f) >= 6 {
		m.name = strings.Join(f[5:], " ")
	}
	return m, true
}

// searchInsn scans a mapping in chunks, overlapping by one byte so an
// instruction split across chunks is still found.
func searchInsn(pid int, m execMapping) (uint64, bool) {
	const chunk = 64 << 10
	buf := make([]byte, chunk)
	for a := m.start; a < m.end; a += chunk - 1 {
		n := min(uint64(chunk), m.end-a)
		if ReadMem(pid, a, buf[:n]) != nil {
			return 0, false
		}
		if i := bytes.Index(buf[:n], syscallInsn); i >= 0 {
			return a + uint64(i), true
		}
		if n < chunk {
			break
		}
	}
	return 0, false
}
