package mount

import (
	"fmt"
	"os"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"
)

// FsmountHelperArg is argv[1] of the helper that makes a proc for a pid
// namespace on kernels without proc's pidns option: `gocr __fsmount proc
// [key[=value]...]`, started inside that pid namespace, sends the new
// detached mount back over fd 3 and exits.
const FsmountHelperArg = "__fsmount"

// IsFsmountHelper reports whether the command line asks for the helper.
func IsFsmountHelper(args []string) bool { return len(args) > 0 && args[0] == FsmountHelperArg }

// RunFsmountHelper is the helper's whole life.
func RunFsmountHelper(args []string) int {
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: gocr __fsmount FSTYPE [key[=value]...]")
		return 2
	}
	opts := map[string]string{}
	var order []string
	for _, kv := range args[2:] {
		k, v, _ := strings.Cut(kv, "=")
		opts[k] = v
		order = append(order, k)
	}
	fd, err := newFSOrdered(args[1], opts, order, -1)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := unix.Sendmsg(3, []byte{0}, unix.UnixRights(fd), nil, 0); err != nil {
		fmt.Fprintf(os.Stderr, "send the mount back: %v\n", err)
		return 1
	}
	return 0
}

// newFSInPidNS makes a filesystem (proc) from inside the pid namespace
// behind pidns: proc takes the pid namespace of the task that creates it,
// and kernels before the pidns option (6.x) let nothing else choose it. The
// calling thread must be one that may change namespaces (a throwaway
// thread): it joins the pid namespace for its children and starts the
// helper, which inherits its other namespaces too.
func newFSInPidNS(fstype string, opts map[string]string, order []string, pidns int) (int, error) {
	if err := unix.Setns(pidns, unix.CLONE_NEWPID); err != nil {
		return -1, fmt.Errorf("join the pid namespace for a %s helper: %w", fstype, err)
	}
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(sp[0])
	child := os.NewFile(uintptr(sp[1]), "fsmount-helper")
	defer child.Close()
	args := []string{FsmountHelperArg, fstype}
	for _, k := range order {
		if v := opts[k]; v != "" {
			args = append(args, k+"="+v)
		} else {
			args = append(args, k)
		}
	}
	cmd := exec.Command("/proc/self/exe", args...)
	cmd.ExtraFiles = []*os.File{child}
	if out, err := cmd.CombinedOutput(); err != nil {
		return -1, fmt.Errorf("%s helper in the pid namespace: %v: %s", fstype, err, strings.TrimSpace(string(out)))
	}
	buf, oob := make([]byte, 1), make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(sp[0], buf, oob, unix.MSG_CMSG_CLOEXEC|unix.MSG_DONTWAIT)
	if err != nil {
		return -1, fmt.Errorf("receive the %s mount: %w", fstype, err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return -1, fmt.Errorf("receive the %s mount: no fd in the message", fstype)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return -1, fmt.Errorf("receive the %s mount: %v", fstype, err)
	}
	return fds[0], nil
}
