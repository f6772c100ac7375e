package kernel

import (
	"fmt"
	"github.com/gocr/gocr/engine/netlock"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// criuFeature is one name of CRIU 4.2's `criu check --feature` list
// (criu/cr-check.c), answered for gocr: the feature is there when the
// kernel has what it takes (the gocr probes in needs, and extra if set)
// and gocr implements the behaviour CRIU means by it; lacks, when set,
// says what gocr does not do yet, and the answer is no on any kernel.
type criuFeature struct {
	name  string
	needs []string
	extra func() (bool, string)
	lacks string
}

// criuFeatures is CRIU 4.2's list, in its order. zdtm.py asks these to
// decide which tests to skip, so a yes must mean gocr can do it here.
var criuFeatures = []criuFeature{
	{name: "mnt_id", needs: []string{"fdinfo-mnt-id"}},
	{name: "mem_dirty_track", lacks: "incremental dumps (pre-dump, --track-mem)"},
	{name: "aio_remap", lacks: "AIO rings"},
	{name: "timerfd", needs: []string{"timerfd-set-ticks"}},
	{name: "tun", lacks: "tun devices"},
	{name: "tun_ns", lacks: "tun devices"},
	{name: "userns", needs: []string{"checkpoint-restore"}, extra: userNSFile},
	{name: "fdinfo_lock", extra: fdinfoLocks},
	{name: "seccomp_suspend", needs: []string{"ptrace-suspend-seccomp"}},
	{name: "seccomp_filters", needs: []string{"ptrace-suspend-seccomp", "ptrace-seccomp-filter"}},
	{name: "loginuid", lacks: "restoring the audit login uid"},
	{name: "cgroupns", lacks: "cgroups and cgroup namespaces"},
	{name: "autofs", lacks: "autofs mounts"},
	{name: "tcp_half_closed", lacks: "half-closed TCP connections (FIN_WAIT, CLOSE_WAIT, LAST_ACK, CLOSING)"},
	{name: "compat_cr", lacks: "32-bit (compat) tasks"},
	{name: "uffd", lacks: "lazy (post-copy) restore"},
	{name: "uffd-noncoop", lacks: "lazy (post-copy) restore"},
	{name: "can_map_vdso", lacks: "mapping a vdso of its own (it moves the stub's vdso to the image's address instead)"},
	{name: "sk_ns", lacks: "sockets of other network namespaces than the tree's"},
	{name: "sk_unix_file", lacks: "reaching a unix socket's bound file through the socket (SIOCUNIXFILE)"},
	{name: "net_diag_raw", lacks: "raw sockets"},
	{name: "nsid", lacks: "network namespace ids (NETNSA_NSID)"},
	{name: "link_nsid", lacks: "network devices linked across namespaces"},
	{name: "kcmp_epoll", lacks: "epoll targets that are no longer open in the task (KCMP_EPOLL_TFD)"},
	{name: "timens", needs: []string{"time-ns"}},
	{name: "external_net_ns", lacks: "external network namespaces"},
	{name: "clone3_set_tid", needs: []string{"clone3-set-tid"}},
	{name: "newifindex", lacks: "network devices"},
	{name: "nftables", lacks: "nftables rules"},
	{name: "has_ipt_legacy", lacks: "iptables rules"},
	{name: "pidfd_store", lacks: "pre-dumps, which keep pidfds of the tree between them"},
	{name: "ns_pid", lacks: "nested pid namespaces"},
	{name: "apparmor_stacking", lacks: "AppArmor namespaces and stacked profiles"},
	{name: "network_lock_nftables", extra: netlock.Probe},
	{name: "sockopt_buf_lock", lacks: "restoring locked socket buffer sizes (SO_BUF_LOCK)"},
	{name: "memfd_hugetlb", lacks: "hugetlb memfds"},
	{name: "move_mount_set_group", needs: []string{"move-mount-set-group"}},
	{name: "openat2", extra: openat2Works},
	{name: "get_rseq_conf", needs: []string{"ptrace-rseq-config"}},
	{name: "ipv6_freebind", extra: ipv6Freebind},
	{name: "pagemap_scan", needs: []string{"pagemap-scan"}},
	{name: "timer_cr_ids", lacks: "POSIX timers"},
	{name: "overlayfs_maps", lacks: "mappings of overlayfs files"},
	{name: "breakpoints", lacks: "hardware breakpoints (debug registers)"},
	{name: "pagemap_scan_guard_pages", lacks: "guard pages (MADV_GUARD_INSTALL)"},
}

// CriuNames lists the names of CRIU's `check --feature` list, in its
// order.
func CriuNames() []string {
	out := make([]string, len(criuFeatures))
	for i, c := range criuFeatures {
		out[i] = c.name
	}
	return out
}

// Criu answers CRIU's `criu check --feature NAME` for gocr on this kernel:
// Found only when the kernel has it and gocr does what CRIU means by it.
// It returns false for a name CRIU does not know.
func (f Features) Criu(name string) (Feature, bool) {
	for _, c := range criuFeatures {
		if c.name != name {
			continue
		}
		ft := Feature{Name: name, Found: true, Optional: true}
		if c.lacks != "" {
			ft.Found, ft.Detail = false, "gocr does not support "+c.lacks+" yet"
			return ft, true
		}
		var seen []string
		for _, n := range c.needs {
			g, ok := f.Lookup(n)
			if !ok {
				ft.Found, ft.Detail = false, n+" was not probed"
				return ft, true
			}
			if !g.Found {
				ft.Found, ft.Since = false, g.Since
				ft.Detail = fmt.Sprintf("kernel lacks %s: %s", n, g.Detail)
				return ft, true
			}
			seen = append(seen, n+": "+g.Detail)
		}
		if c.extra != nil {
			ok, detail := c.extra()
			if !ok {
				ft.Found, ft.Detail = false, detail
				return ft, true
			}
			seen = append(seen, detail)
		}
		ft.Detail = strings.Join(seen, "; ")
		return ft, true
	}
	return Feature{}, false
}

// userNSFile is the other half of CRIU's userns check: the kernel has
// user namespaces.
func userNSFile() (bool, string) {
	if _, err := os.Stat("/proc/self/ns/user"); err != nil {
		return false, fmt.Sprintf("no user namespaces: %v", err)
	}
	return true, "/proc/self/ns/user exists"
}

// fdinfoLocks takes a flock on a file of its own and looks for it in
// fdinfo's lock: lines (Linux 4.1), from which gocr saves the tree's file
// locks (--file-locks).
func fdinfoLocks() (bool, string) {
	f, err := os.CreateTemp("", "gocr-lock-probe-")
	if err != nil {
		return false, fmt.Sprintf("probe file: %v", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return false, fmt.Sprintf("flock: %v", err)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", f.Fd()))
	if err != nil || !strings.Contains(string(b), "\nlock:\t") {
		return false, "fdinfo shows no lock: lines"
	}
	return true, "fdinfo shows the locks of each fd"
}

// openat2Works opens / with openat2 (Linux 5.6), which gocr's mount code
// uses to open paths without following links out of a mount.
// ipv6Freebind: an IPv6 socket takes IPV6_FREEBIND (Linux 4.15).
func ipv6Freebind() (bool, string) {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Sprintf("IPv6 socket: %v", err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_FREEBIND, 1); err != nil {
		return false, fmt.Sprintf("IPV6_FREEBIND: %v", err)
	}
	return true, "IPV6_FREEBIND works"
}

func openat2Works() (bool, string) {
	fd, err := unix.Openat2(unix.AT_FDCWD, "/", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_SYMLINKS})
	if err != nil {
		return false, fmt.Sprintf("openat2: %v", err)
	}
	unix.Close(fd)
	return true, "openat2 works"
}
