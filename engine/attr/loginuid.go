package attr

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// unsetLoginuid is the audit login uid of a process no login set.
const unsetLoginuid = 4294967295

// DumpLoginuid reads pid's audit login uid. Setting it needs
// CAP_AUDIT_CONTROL in the process itself, which a stub inside a user
// namespace does not have: gocr does not set it yet, so a tree whose login
// uid differs from gocr's own (which a restored process inherits) is
// refused rather than given another. A kernel without audit has no such
// file: nothing to keep.
func DumpLoginuid(pid int) (uint32, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/loginuid", pid))
	if os.IsNotExist(err) {
		return unsetLoginuid, nil
	}
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("loginuid %q: %w", b, err)
	}
	own, err := os.ReadFile("/proc/self/loginuid")
	if err != nil {
		return 0, err
	}
	if o, _ := strconv.ParseUint(strings.TrimSpace(string(own)), 10, 32); o != v {
		return 0, fmt.Errorf("audit loginuid %d differs from gocr's %d, which a restored process would get: setting it is not supported yet", v, o)
	}
	return uint32(v), nil
}

// CheckLoginuid refuses, at restore, a login uid other than gocr's own,
// which the restored process gets (images of another gocr, or CRIU's).
func CheckLoginuid(v uint32) error {
	own, err := os.ReadFile("/proc/self/loginuid")
	if os.IsNotExist(err) {
		if v == unsetLoginuid {
			return nil
		}
		return fmt.Errorf("loginuid %d: this kernel has no audit login uids", v)
	}
	if err != nil {
		return err
	}
	if o, _ := strconv.ParseUint(strings.TrimSpace(string(own)), 10, 32); uint32(o) != v {
		return fmt.Errorf("loginuid %d differs from gocr's %d, which the restored process would get: setting it is not supported yet", v, o)
	}
	return nil
}
