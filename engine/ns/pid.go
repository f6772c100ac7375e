package ns

import (
	"fmt"

	"github.com/gocr/gocr/engine/procfs"
)

// CheckPidNS accepts a task in a pid namespace of its own only when it is
// that namespace's init: the whole namespace is then in the tree, and
// restore makes a fresh one with the task as pid 1 again.
func CheckPidNS(pid int) error {
	st, err := procfs.Status(pid)
	if err != nil {
		return err
	}
	if n := len(st.NSpid); n < 2 || st.NSpid[n-1] != 1 {
		return fmt.Errorf("pid %d is in a pid namespace of its own but is not its init (NSpid %v): dump that namespace's pid 1", pid, st.NSpid)
	}
	return nil
}
