package lib

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
)

// launch starts the daemon and waits until it is ready or dead. Its exit
// code is the protocol's: 0 once the pidfile is written, 1 if the daemon
// died first.
func launch(opts map[string]string) int {
	outfile, pidfile := opts["outfile"], opts["pidfile"]
	out, err := os.OpenFile(outfile+".inprogress", os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintf(os.Stderr, "launch: %v\n", err)
		return 1
	}
	defer out.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		fmt.Fprintf(os.Stderr, "launch: %v\n", err)
		return 1
	}
	defer null.Close()
	rd, wr, err := os.Pipe()
	if err != nil {
		fmt.Fprintf(os.Stderr, "launch: %v\n", err)
		return 1
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "launch: %v\n", err)
		return 1
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	// Go ≥ 1.25 keeps cgroup cpu-limit files open to track GOMAXPROCS;
	// turn that off so the daemon's fd table holds only the test's state.
	cmd.Env = append(os.Environ(), envDaemon+"=3", "GODEBUG=containermaxprocs=0,updatemaxprocs=0")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, out, out
	cmd.ExtraFiles = []*os.File{wr}
	cmd.SysProcAttr, err = daemonAttr(os.Getenv(envFlavor))
	if err != nil {
		fmt.Fprintf(os.Stderr, "launch: %v\n", err)
		return 1
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "launch: start daemon: %v\n", err)
		return 1
	}
	wr.Close()
	// Read to EOF, not just the 'R': the daemon closes its end right after,
	// and the pidfile must not appear while that fd is still open in it.
	if b, _ := io.ReadAll(rd); string(b) != "R" {
		st, _ := cmd.Process.Wait()
		fmt.Fprintf(os.Stderr, "launch: daemon %d died before it was ready: %v (see %s)\n", cmd.Process.Pid, st, outfile)
		return 1
	}
	if err := writeFileAtomic(pidfile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n")); err != nil {
		fmt.Fprintf(os.Stderr, "launch: %v\n", err)
		return 1
	}
	return 0
}

// daemonAttr gives the daemon its own session and, for the ns flavors, the
// fresh namespaces it will be pid 1 of.
func daemonAttr(flavor string) (*syscall.SysProcAttr, error) {
	attr := &syscall.SysProcAttr{Setsid: true}
	switch flavor {
	case "", "h":
	case "ns", "uns":
		attr.Cloneflags = syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS |
			syscall.CLONE_NEWIPC | syscall.CLONE_NEWNET
		if flavor == "uns" {
			base, err := strconv.Atoi(os.Getenv(envUIDBase))
			if err != nil {
				return nil, fmt.Errorf("uns flavor needs %s=<host id of root inside>: %w", envUIDBase, err)
			}
			attr.Cloneflags |= syscall.CLONE_NEWUSER
			attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: base, Size: 65536}}
			attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: base, Size: 65536}}
			// Host root is not mapped: become root inside before exec so
			// the daemon keeps its capabilities in the new namespace.
			attr.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
			// Leave setgroups allowed, so ZDTM_GROUPS works inside too.
			attr.GidMappingsEnableSetgroups = true
		}
	default:
		return nil, fmt.Errorf("unknown flavor %q", flavor)
	}
	return attr, nil
}

// writeFileAtomic writes a file under a temporary name and renames it, so a
// reader never sees it half written.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp.Chmod(0o644)
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}
