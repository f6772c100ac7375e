package ns

import (
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/ipc-var"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/netdev"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/userns"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gocr/gocr/internal/netif"
)

// sleeper starts a process in fresh uts, ipc and net namespaces.
func sleeper(t *testing.T) int {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create namespaces")
	}
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC | syscall.CLONE_NEWNET}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

func TestOwnNamespaces(t *testing.T) {
	pid := sleeper(t)
	own, err := Own(pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"uts", "ipc", "net"} {
		if own[k] == 0 {
			t.Errorf("%s namespace of pid %d not reported as its own: %v", k, pid, own)
		}
	}
	if own["mnt"] != 0 || own["pid"] != 0 {
		t.Errorf("shared namespaces reported as own: %v", own)
	}
}

// State set in one set of namespaces comes back in a fresh set.
func TestDumpRestoreUTSNetIPC(t *testing.T) {
	a, b := sleeper(t), sleeper(t)
	err := Enter(a, "uts", func() error {
		if err := unix.Sethostname([]byte("gocr-a")); err != nil {
			return err
		}
		return unix.Setdomainname([]byte("dom-a"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := Enter(a, "net", func() error { return netif.SetFlags("lo", unix.IFF_UP) }); err != nil {
		t.Fatal(err)
	}
	if err := Enter(a, "ipc", func() error { return os.WriteFile("/proc/sys/kernel/msgmax", []byte("4242"), 0) }); err != nil {
		t.Fatal(err)
	}
	// Sysctls of every list: all, default, the device's, unix, ipv4.
	sysctls := map[string]string{
		"/proc/sys/net/ipv4/conf/all/accept_local":  "1",
		"/proc/sys/net/ipv4/conf/default/rp_filter": "2",
		"/proc/sys/net/ipv4/conf/lo/arp_ignore":     "1",
		"/proc/sys/net/unix/max_dgram_qlen":         "77",
		"/proc/sys/net/ipv4/ping_group_range":       "40000 50000",
	}
	if err := Enter(a, "net", func() error {
		for p, v := range sysctls {
			if err := os.WriteFile(p, []byte(v), 0); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	uts, err := DumpUTS(a)
	if err != nil {
		t.Fatal(err)
	}
	devs, conf, err := DumpNet(a)
	if err != nil {
		t.Fatal(err)
	}
	ipc, err := dumpIPCVarOf(a)
	if err != nil {
		t.Fatal(err)
	}
	if uts.GetNodename() != "gocr-a" || uts.GetDomainname() != "dom-a" || len(devs) != 1 || devs[0].GetFlags()&unix.IFF_UP == 0 || ipc.GetMsgCtlmax() != 4242 {
		t.Fatalf("dump: uts %v devs %v msgmax %d", uts, devs, ipc.GetMsgCtlmax())
	}
	if err := RestoreUTS(b, uts); err != nil {
		t.Fatal(err)
	}
	// Through the image's encoding: ipv4_sysctl is an unknown field.
	raw, err := proto.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	conf = &netdev.NetnsEntry{}
	if err := proto.Unmarshal(raw, conf); err != nil {
		t.Fatal(err)
	}
	if err := RestoreNet(b, devs, conf); err != nil {
		t.Fatal(err)
	}
	if err := Enter(b, "net", func() error {
		for p, v := range sysctls {
			got, err := os.ReadFile(p)
			if err != nil || normalize(string(got)) != v {
				t.Errorf("%s after restore: %q (%v), want %s", p, got, err, v)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := Enter(b, "ipc", func() error { return restoreIPCVar(ipc) }); err != nil {
		t.Fatal(err)
	}
	uts2, _ := DumpUTS(b)
	devs2, _, _ := DumpNet(b)
	ipc2, _ := dumpIPCVarOf(b)
	if uts2.GetNodename() != "gocr-a" || uts2.GetDomainname() != "dom-a" || devs2[0].GetFlags()&unix.IFF_UP == 0 || ipc2.GetMsgCtlmax() != 4242 {
		t.Fatalf("restore: uts %v devs %v msgmax %d", uts2, devs2, ipc2.GetMsgCtlmax())
	}
	// The host's own names are untouched.
	var u unix.Utsname
	unix.Uname(&u)
	if unix.ByteSliceToString(u.Nodename[:]) == "gocr-a" {
		t.Fatal("hostname leaked into the host's uts namespace")
	}
}

func dumpIPCVarOf(pid int) (e *ipc_var.IpcVarEntry, err error) {
	err = Enter(pid, "ipc", func() error { e, err = dumpIPCVar(); return err })
	return e, err
}

func TestUserMapTranslation(t *testing.T) {
	ext := func(first, lower, count uint32) *userns.UidGidExtent {
		return &userns.UidGidExtent{First: &first, LowerFirst: &lower, Count: &count}
	}
	m := []*userns.UidGidExtent{ext(0, 100000, 1000), ext(5000, 7, 1)}
	for _, c := range []struct{ outside, inside uint32 }{{100000, 0}, {100999, 999}, {101000, overflowID}, {7, 5000}, {0, overflowID}} {
		if got := Inside(m, c.outside); got != c.inside {
			t.Errorf("Inside(%d) = %d, want %d", c.outside, got, c.inside)
		}
		if c.inside == overflowID {
			continue
		}
		if got, ok := Outside(m, c.inside); !ok || got != c.outside {
			t.Errorf("Outside(%d) = %d, %v, want %d", c.inside, got, ok, c.outside)
		}
	}
	if err := CheckUser(&userns.UsernsEntry{UidMap: m, GidMap: m}); err != nil {
		t.Error(err)
	}
	noRoot := []*userns.UidGidExtent{ext(1, 100000, 10)}
	if err := CheckUser(&userns.UsernsEntry{UidMap: m, GidMap: noRoot}); err == nil {
		t.Error("a gid map without 0 was accepted")
	}
}
