package kernel

import (
	"slices"
	"testing"
)

// criu42 is the feature list of CRIU 4.2's criu/cr-check.c, in its order.
var criu42 = []string{
	"mnt_id", "mem_dirty_track", "aio_remap", "timerfd", "tun", "tun_ns", "userns", "fdinfo_lock",
	"seccomp_suspend", "seccomp_filters", "loginuid", "cgroupns", "autofs", "tcp_half_closed", "compat_cr",
	"uffd", "uffd-noncoop", "can_map_vdso", "sk_ns", "sk_unix_file", "net_diag_raw", "nsid", "link_nsid",
	"kcmp_epoll", "timens", "external_net_ns", "clone3_set_tid", "newifindex", "nftables", "has_ipt_legacy",
	"pidfd_store", "ns_pid", "apparmor_stacking", "network_lock_nftables", "sockopt_buf_lock", "memfd_hugetlb",
	"move_mount_set_group", "openat2", "get_rseq_conf", "ipv6_freebind", "pagemap_scan", "timer_cr_ids",
	"overlayfs_maps", "breakpoints", "pagemap_scan_guard_pages",
}

// Every CRIU name is known, each answer is backed by a gocr probe or says
// what gocr lacks, and on this host (6.18) the ones gocr implements are
// there.
func TestCriuFeatures(t *testing.T) {
	if !slices.Equal(CriuNames(), criu42) {
		t.Errorf("CriuNames() = %v\nwant CRIU 4.2's %v", CriuNames(), criu42)
	}
	for _, c := range criuFeatures {
		for _, n := range c.needs {
			if !slices.Contains(Names(), n) {
				t.Errorf("%s needs %s, which no probe reports", c.name, n)
			}
		}
		if c.lacks != "" && (c.needs != nil || c.extra != nil) {
			t.Errorf("%s: both lacking and probed", c.name)
		}
		if c.lacks == "" && c.needs == nil && c.extra == nil {
			t.Errorf("%s: neither lacking nor probed", c.name)
		}
	}
	f := probed(t)
	for _, n := range criu42 {
		ft, ok := f.Criu(n)
		if !ok || ft.Name != n || ft.Detail == "" {
			t.Errorf("Criu(%s) = %+v, %v", n, ft, ok)
		}
		t.Logf("%-26s %-5v %s", n, ft.Found, ft.Detail)
	}
	if _, ok := f.Criu("pagemap-scan"); ok {
		t.Error("a gocr name answered as CRIU's")
	}
	// The aliases Lookup knows answer as Criu does.
	for criu, ours := range criuNames {
		a, _ := f.Criu(criu)
		b, _ := f.Lookup(ours)
		if a.Found != b.Found {
			t.Errorf("%s: Criu says %v, %s says %v", criu, a.Found, ours, b.Found)
		}
	}
	// What gocr cannot do is never there, whatever the kernel.
	for _, n := range []string{"mem_dirty_track", "tcp_half_closed", "uffd", "pidfd_store"} {
		if ft, _ := f.Criu(n); ft.Found {
			t.Errorf("%s found, but gocr does not implement it", n)
		}
	}
	if !f.Kernel.AtLeast(Version{6, 13, 0}) {
		t.Skipf("kernel %s is older than the 6.18 host the expectations were measured on", f.Release)
	}
	for _, n := range []string{"mnt_id", "timerfd", "userns", "timens", "clone3_set_tid", "move_mount_set_group", "openat2", "get_rseq_conf", "pagemap_scan", "seccomp_suspend", "seccomp_filters"} {
		if ft, _ := f.Criu(n); !ft.Found {
			t.Errorf("%s missing on this host: %s", n, ft.Detail)
		}
	}
}

// A needed probe that failed makes the CRIU feature missing, with the
// probe's reason and the kernel that added it.
func TestCriuFeatureFromProbe(t *testing.T) {
	f := Features{List: []Feature{{Name: "time-ns", Found: false, Since: "5.6", Detail: "no /proc/self/ns/time"}}}
	ft, ok := f.Criu("timens")
	if !ok || ft.Found || ft.Since != "5.6" || ft.Detail != "kernel lacks time-ns: no /proc/self/ns/time" {
		t.Errorf("Criu(timens) = %+v", ft)
	}
	f.List[0].Found = true
	if ft, _ := f.Criu("timens"); !ft.Found {
		t.Errorf("Criu(timens) with time-ns found = %+v", ft)
	}
}
