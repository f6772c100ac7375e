package procfs

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// Comm reads /proc/PID/comm: the task name, at most 15 bytes, unescaped.
func Comm(pid int) (string, error) {
	b, err := readFile(pid, "comm")
	if err != nil {
		return "", err
	}
	return string(bytes.TrimSuffix(b, []byte{'\n'})), nil
}

// Personality reads /proc/PID/personality (hex; needs ptrace access).
func Personality(pid int) (uint32, error) {
	b, err := readFile(pid, "personality")
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(string(bytes.TrimSpace(b)), 16, 32)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", path(pid, "personality"), err)
	}
	return uint32(v), nil
}

// TimerSlack reads /proc/PID/timerslack_ns (4.6+), which prctl can only set
// for the caller; restore writes the file back instead.
func TimerSlack(pid int) (uint64, error) {
	b, err := readFile(pid, "timerslack_ns")
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", path(pid, "timerslack_ns"), err)
	}
	return v, nil
}

func readlink(pid int, name string) (string, error) {
	t, err := os.Readlink(path(pid, name))
	if err != nil {
		return "", fmt.Errorf("readlink %s: %w", path(pid, name), err)
	}
	return t, nil
}

// Cwd is the target of /proc/PID/cwd.
func Cwd(pid int) (string, error) { return readlink(pid, "cwd") }

// Root is the target of /proc/PID/root, the task's chroot.
func Root(pid int) (string, error) { return readlink(pid, "root") }

// Exe is the target of /proc/PID/exe (" (deleted)" kept as the kernel says).
func Exe(pid int) (string, error) { return readlink(pid, "exe") }
