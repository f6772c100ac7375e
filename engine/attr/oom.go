package attr

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// capSysResource is CAP_SYS_RESOURCE's bit, which lowering an
// oom_score_adj needs.
const capSysResource = 24

func readInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}

// DumpOOMScoreAdj reads pid's oom_score_adj and refuses one that restore
// on this machine could not set: a process starts with gocr's value, and
// going below it needs CAP_SYS_RESOURCE.
func DumpOOMScoreAdj(pid int) (int32, error) {
	v, err := readInt(fmt.Sprintf("/proc/%d/oom_score_adj", pid))
	if err != nil {
		return 0, err
	}
	own, err := readInt("/proc/self/oom_score_adj")
	if err != nil {
		return 0, err
	}
	if v < own && !hasCap(capSysResource) {
		return 0, fmt.Errorf("oom_score_adj %d is below gocr's %d, and setting it again needs CAP_SYS_RESOURCE, which gocr lacks", v, own)
	}
	return int32(v), nil
}

// RestoreOOMScoreAdj sets pid's oom_score_adj.
func RestoreOOMScoreAdj(pid int, v int32) error {
	if v < -1000 || v > 1000 {
		return fmt.Errorf("oom_score_adj %d: not in -1000..1000", v)
	}
	path := fmt.Sprintf("/proc/%d/oom_score_adj", pid)
	if cur, err := readInt(path); err == nil && cur == int(v) {
		return nil
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(int(v))), 0); err != nil {
		return fmt.Errorf("oom_score_adj %d: %w", v, err)
	}
	return nil
}

// hasCap reports whether gocr has capability bit in its effective set.
func hasCap(bit uint) bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && n&(1<<bit) != 0
		}
	}
	return false
}
