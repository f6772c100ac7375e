package ns

import (
	"fmt"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// What the restore of a network namespace does not make yet, and so the
// dump refuses by name rather than lose: addresses other than the
// loopback's own, routes no address made, policy rules beyond the
// kernel's. (nftables tables are netlock's to list.)

// Default policy rules of a fresh namespace: local, main and default for
// IPv4, local and main for IPv6.
const defaultRules4, defaultRules6 = 3, 2

// checkNetConfig runs in the namespace (see DumpNet).
func checkNetConfig(ifs []net.Interface) error {
	for _, i := range ifs {
		addrs, err := i.Addrs()
		if err != nil {
			return fmt.Errorf("interface %s: addresses: %w", i.Name, err)
		}
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ones, _ := n.Mask.Size()
			if i.Flags&net.FlagLoopback != 0 && (n.IP.Equal(net.IPv4(127, 0, 0, 1)) && ones == 8 || n.IP.Equal(net.IPv6loopback) && ones == 128) {
				continue // the loopback's own, made as it comes up
			}
			return fmt.Errorf("interface %s: address %s: addresses other than the loopback's own are not supported yet", i.Name, n)
		}
	}
	if err := checkRoutes(); err != nil {
		return err
	}
	return checkRules()
}

// checkRoutes refuses a route of any table that the kernel did not make
// for an address or a device (protocol other than RTPROT_KERNEL).
func checkRoutes() error {
	msgs, err := dumpRIB(unix.RTM_GETROUTE)
	if err != nil {
		return fmt.Errorf("routes: %w", err)
	}
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWROUTE || len(m.Data) < unix.SizeofRtMsg {
			continue
		}
		rt := (*unix.RtMsg)(unsafe.Pointer(&m.Data[0]))
		if rt.Protocol == unix.RTPROT_KERNEL {
			continue
		}
		return fmt.Errorf("route %s (table %d, protocol %d): routes are not supported yet", routeDst(rt, m.Data[unix.SizeofRtMsg:]), rt.Table, rt.Protocol)
	}
	return nil
}

// checkRules refuses policy routing rules beyond a fresh namespace's.
func checkRules() error {
	msgs, err := dumpRIB(unix.RTM_GETRULE)
	if err != nil {
		return fmt.Errorf("policy rules: %w", err)
	}
	n := map[uint8]int{}
	for _, m := range msgs {
		if m.Header.Type == unix.RTM_NEWRULE && len(m.Data) > 0 {
			n[m.Data[0]]++ // struct fib_rule_hdr starts with the family
		}
	}
	if n[unix.AF_INET] > defaultRules4 || n[unix.AF_INET6] > defaultRules6 {
		return fmt.Errorf("%d IPv4 and %d IPv6 policy rules, more than a new namespace's %d and %d: rules are not supported yet", n[unix.AF_INET], n[unix.AF_INET6], defaultRules4, defaultRules6)
	}
	return nil
}

// dumpRIB asks the kernel for every entry of kind typ, both families.
func dumpRIB(typ int) ([]syscall.NetlinkMessage, error) {
	b, err := syscall.NetlinkRIB(typ, unix.AF_UNSPEC)
	if err != nil {
		return nil, err
	}
	return syscall.ParseNetlinkMessage(b)
}

// routeDst names a route by its destination, for the error.
func routeDst(rt *unix.RtMsg, attrs []byte) string {
	for len(attrs) >= unix.SizeofRtAttr {
		a := (*unix.RtAttr)(unsafe.Pointer(&attrs[0]))
		l := int(a.Len)
		if l < unix.SizeofRtAttr || l > len(attrs) {
			break
		}
		if a.Type == unix.RTA_DST {
			return fmt.Sprintf("%s/%d", net.IP(attrs[unix.SizeofRtAttr:l]), rt.Dst_len)
		}
		attrs = attrs[(l+unix.RTA_ALIGNTO-1)&^(unix.RTA_ALIGNTO-1):]
	}
	return "default"
}
