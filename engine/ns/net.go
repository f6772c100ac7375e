package ns

import (
	"fmt"
	"net"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/netdev"
	"github.com/gocr/gocr/internal/netif"
)

// DumpNet describes pid's network namespace: its devices and its
// sysctls (netsysctl.go). Only the loopback device is supported so far;
// any other interface, an address, route or rule the restore would not
// make is refused by name (netcheck.go).
func DumpNet(pid int) ([]*netdev.NetDeviceEntry, *netdev.NetnsEntry, error) {
	var out []*netdev.NetDeviceEntry
	var conf *netdev.NetnsEntry
	err := Enter(pid, "net", func() error {
		ifs, err := net.Interfaces()
		if err != nil {
			return err
		}
		for _, i := range ifs {
			if i.Flags&net.FlagLoopback == 0 {
				return fmt.Errorf("interface %s: only the loopback device is supported so far", i.Name)
			}
			flags, err := netif.Flags(i.Name)
			if err != nil {
				return err
			}
			typ := netdev.NdType_LOOPBACK
			name := i.Name
			out = append(out, &netdev.NetDeviceEntry{Type: &typ, Ifindex: ptr(uint32(i.Index)), Mtu: ptr(uint32(i.MTU)),
				Flags: ptr(uint32(flags)), Name: &name})
		}
		if err := checkNetConfig(ifs); err != nil {
			return err
		}
		c, err := dumpNetSysctls(out)
		conf = c
		return err
	})
	return out, conf, err
}

// RestoreNet brings pid's fresh network namespace to the dumped state: the
// loopback device's flags (up or down), then the sysctls.
func RestoreNet(pid int, devs []*netdev.NetDeviceEntry, conf *netdev.NetnsEntry) error {
	return Enter(pid, "net", func() error {
		for _, d := range devs {
			if d.GetType() != netdev.NdType_LOOPBACK {
				return fmt.Errorf("device %s: type %v is not supported", d.GetName(), d.GetType())
			}
			if err := netif.SetFlags(d.GetName(), uint16(d.GetFlags())); err != nil {
				return err
			}
		}
		return restoreNetSysctls(conf, devs)
	})
}

func ptr[T any](v T) *T { return &v }
