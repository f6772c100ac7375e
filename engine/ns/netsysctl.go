package ns

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/netdev"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/sysctl"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// The sysctls of a network namespace that the images keep, as CRIU keeps
// them: each list in this order, one SysctlEntry per name (without a
// value where the kernel lacks the file), in netns.img (all, default,
// unix, ipv4) and in the netdev entry of each device (its own conf).
// Restore writes a value only where the new namespace's differs.

var ipv4DevConf = []string{
	"accept_local", "accept_redirects", "accept_source_route", "arp_accept", "arp_announce", "arp_filter",
	"arp_ignore", "arp_notify", "bootp_relay", "disable_policy", "disable_xfrm", "force_igmp_version",
	"forwarding", "igmpv2_unsolicited_report_interval", "igmpv3_unsolicited_report_interval", "log_martians",
	"medium_id", "promote_secondaries", "proxy_arp", "proxy_arp_pvlan", "route_localnet", "rp_filter",
	"secure_redirects", "send_redirects", "shared_media", "src_valid_mark", "tag", "ignore_routes_with_linkdown",
	"drop_gratuitous_arp", "drop_unicast_in_l2_multicast",
}

// ipv6DevConf keeps disable_ipv6 before mtu: disabling IPv6 resets the
// MTU.
var ipv6DevConf = []string{
	"accept_dad", "accept_ra", "accept_ra_defrtr", "accept_ra_from_local", "accept_ra_min_hop_limit",
	"accept_ra_mtu", "accept_ra_pinfo", "accept_ra_rt_info_max_plen", "accept_ra_rtr_pref", "accept_redirects",
	"accept_source_route", "autoconf", "dad_transmits", "disable_ipv6", "drop_unicast_in_l2_multicast",
	"drop_unsolicited_na", "force_mld_version", "force_tllao", "forwarding", "hop_limit",
	"ignore_routes_with_linkdown", "keep_addr_on_down", "max_addresses", "max_desync_factor",
	"mldv1_unsolicited_report_interval", "mldv2_unsolicited_report_interval", "mtu", "ndisc_notify",
	"optimistic_dad", "proxy_ndp", "regen_max_retry", "router_probe_interval", "router_solicitation_delay",
	"router_solicitation_interval", "router_solicitations", "stable_secret", "suppress_frag_ndisc",
	"temp_prefered_lft", "temp_valid_lft", "use_oif_addrs_only", "use_optimistic", "use_tempaddr",
}

var unixConf = []string{"max_dgram_qlen"}
var ipv4Sysctls = []string{"ping_group_range"}

// strSysctls are the ones whose value is a string.
var strSysctls = map[string]bool{"stable_secret": true, "ping_group_range": true}

// sysctlDir is where a list lives under /proc/sys/net.
func devConfDir(proto, dev string) string { return "/proc/sys/net/" + proto + "/conf/" + dev + "/" }

const (
	unixDir = "/proc/sys/net/unix/"
	ipv4Dir = "/proc/sys/net/ipv4/"
)

// readSysctls reads the names of dir, in order (the calling thread is in
// the namespace, with /proc showing it: see Enter).
func readSysctls(dir string, names []string) ([]*sysctl.SysctlEntry, error) {
	out := make([]*sysctl.SysctlEntry, 0, len(names))
	for _, n := range names {
		e := &sysctl.SysctlEntry{Type: sysctl.SysctlType_CTL_32.Enum()}
		if strSysctls[n] {
			e.Type = sysctl.SysctlType_CTL_STR.Enum()
		}
		b, err := os.ReadFile(dir + n)
		switch {
		case errors.Is(err, os.ErrNotExist), n == "stable_secret" && err != nil:
			// Not in this kernel; stable_secret reads EIO until set.
		case err != nil:
			return nil, fmt.Errorf("sysctl %s%s: %w", dir, n, err)
		case strSysctls[n]:
			e.Sarg = ptr(strings.TrimRight(string(b), "\n"))
		default:
			v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 32)
			if err != nil {
				return nil, fmt.Errorf("sysctl %s%s: %q: %w", dir, n, b, err)
			}
			e.Iarg = ptr(int32(v))
		}
		out = append(out, e)
	}
	return out, nil
}

// writeSysctls sets the names of dir to the values of es where they
// differ now, and says how many it wrote.
func writeSysctls(dir string, names []string, es []*sysctl.SysctlEntry) (int, error) {
	if len(es) > len(names) {
		return 0, fmt.Errorf("sysctls of %s: %d values for %d names", dir, len(es), len(names))
	}
	wrote := 0
	for i, e := range es {
		var want string
		switch {
		case e.Iarg != nil:
			want = strconv.Itoa(int(e.GetIarg()))
		case e.Sarg != nil:
			want = e.GetSarg()
		default:
			continue // the dumping kernel had no such file
		}
		p := dir + names[i]
		b, err := os.ReadFile(p)
		if err == nil && normalize(string(b)) == normalize(want) {
			continue
		}
		if err := os.WriteFile(p, []byte(want), 0); errors.Is(err, os.ErrNotExist) {
			continue // this kernel has no such sysctl (or no IPv6): nothing to set, as CRIU skips it
		} else if err != nil {
			return wrote, fmt.Errorf("sysctl %s = %q: %w", p, want, err)
		}
		wrote++
	}
	return wrote, nil
}

// normalize makes "1\t2\n" and "1 2" compare equal.
func normalize(s string) string { return strings.Join(strings.Fields(s), " ") }

// dumpNetSysctls reads the namespace's own sysctls (netns.img) and each
// device's (into its netdev entry); it runs in the namespace.
func dumpNetSysctls(devs []*netdev.NetDeviceEntry) (*netdev.NetnsEntry, error) {
	e := &netdev.NetnsEntry{}
	var err error
	for _, l := range []struct {
		to    *[]*sysctl.SysctlEntry
		dir   string
		names []string
	}{
		{&e.AllConf4, devConfDir("ipv4", "all"), ipv4DevConf},
		{&e.DefConf4, devConfDir("ipv4", "default"), ipv4DevConf},
		{&e.AllConf6, devConfDir("ipv6", "all"), ipv6DevConf},
		{&e.DefConf6, devConfDir("ipv6", "default"), ipv6DevConf},
		{&e.UnixConf, unixDir, unixConf},
	} {
		if *l.to, err = readSysctls(l.dir, l.names); err != nil {
			return nil, err
		}
	}
	v4, err := readSysctls(ipv4Dir, ipv4Sysctls)
	if err != nil {
		return nil, err
	}
	if err := setIPv4Sysctls(e, v4); err != nil {
		return nil, err
	}
	for _, d := range devs {
		if d.Conf4, err = readSysctls(devConfDir("ipv4", d.GetName()), ipv4DevConf); err != nil {
			return nil, err
		}
		if d.Conf6, err = readSysctls(devConfDir("ipv6", d.GetName()), ipv6DevConf); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// restoreNetSysctls writes them back in the new namespace: all before
// default before the devices, as a value of all may reach the others.
// Writing one may change others (all/forwarding sets all's
// accept_redirects, disable_ipv6 the MTU): the lists are written again
// until nothing differs, a few times at most.
func restoreNetSysctls(e *netdev.NetnsEntry, devs []*netdev.NetDeviceEntry) error {
	if e == nil {
		return nil
	}
	v4, err := IPv4Sysctls(e)
	if err != nil {
		return err
	}
	type list struct {
		from  []*sysctl.SysctlEntry
		dir   string
		names []string
	}
	lists := []list{
		{e.AllConf4, devConfDir("ipv4", "all"), ipv4DevConf},
		{e.DefConf4, devConfDir("ipv4", "default"), ipv4DevConf},
		{e.AllConf6, devConfDir("ipv6", "all"), ipv6DevConf},
		{e.DefConf6, devConfDir("ipv6", "default"), ipv6DevConf},
		{e.UnixConf, unixDir, unixConf},
		{v4, ipv4Dir, ipv4Sysctls},
	}
	for _, d := range devs {
		lists = append(lists, list{d.Conf4, devConfDir("ipv4", d.GetName()), ipv4DevConf}, list{d.Conf6, devConfDir("ipv6", d.GetName()), ipv6DevConf})
	}
	const passes = 4
	for pass := 0; pass < passes; pass++ {
		wrote := 0
		for _, l := range lists {
			n, err := writeSysctls(l.dir, l.names, l.from)
			if err != nil {
				return err
			}
			wrote += n
		}
		if wrote == 0 {
			return nil
		}
	}
	return fmt.Errorf("sysctls: still changing each other after %d passes", passes)
}

// netns_entry.ipv4_sysctl (field 10, repeated sysctl_entry) came with
// CRIU 3.17, after go-criu v7's generated type: gocr writes and reads it
// as the message's unknown fields, where CRIU's crit and restore find it.
const netnsIPv4SysctlField = 10

// setIPv4Sysctls puts es in e as ipv4_sysctl.
func setIPv4Sysctls(e *netdev.NetnsEntry, es []*sysctl.SysctlEntry) error {
	raw := e.ProtoReflect().GetUnknown()
	for _, s := range es {
		b, err := proto.Marshal(s)
		if err != nil {
			return fmt.Errorf("netns.ipv4_sysctl: %w", err)
		}
		raw = protowire.AppendTag(raw, netnsIPv4SysctlField, protowire.BytesType)
		raw = protowire.AppendBytes(raw, b)
	}
	e.ProtoReflect().SetUnknown(raw)
	return nil
}

// IPv4Sysctls reads ipv4_sysctl back (none in images without it); a
// damaged one is an error naming the field.
func IPv4Sysctls(e *netdev.NetnsEntry) ([]*sysctl.SysctlEntry, error) {
	var out []*sysctl.SysctlEntry
	raw := e.ProtoReflect().GetUnknown()
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 {
			return nil, fmt.Errorf("netns: unknown fields: %w", protowire.ParseError(n))
		}
		raw = raw[n:]
		if num != netnsIPv4SysctlField || typ != protowire.BytesType {
			m := protowire.ConsumeFieldValue(num, typ, raw)
			if m < 0 {
				return nil, fmt.Errorf("netns: unknown field %d: %w", num, protowire.ParseError(m))
			}
			raw = raw[m:]
			continue
		}
		b, m := protowire.ConsumeBytes(raw)
		if m < 0 {
			return nil, fmt.Errorf("netns.ipv4_sysctl: %w", protowire.ParseError(m))
		}
		raw = raw[m:]
		s := &sysctl.SysctlEntry{}
		if err := proto.Unmarshal(b, s); err != nil {
			return nil, fmt.Errorf("netns.ipv4_sysctl[%d]: %w", len(out), err)
		}
		out = append(out, s)
	}
	return out, nil
}
