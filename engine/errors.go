package engine

import "fmt"

// TaskError says which task an operation failed on, like *os.PathError does
// for files: "restore pid 4242: map VMA 7f00..7f10: permission denied".
type TaskError struct {
	Pid int    // the task (thread id when the failure is per thread)
	Op  string // what was being done, e.g. "dump fd 7"
	Err error
}

func (e *TaskError) Error() string { return fmt.Sprintf("%s pid %d: %v", e.Op, e.Pid, e.Err) }
func (e *TaskError) Unwrap() error { return e.Err }
