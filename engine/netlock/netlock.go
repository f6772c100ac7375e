// Package netlock is the network lock of a dump: while a tree's TCP
// connections are read and until they are restored, the packets of each
// are dropped, both ways, so a peer outside the tree sees a silent
// network (and retransmits) instead of a reset from a port nobody holds,
// and no segment slips in after its socket was read.
//
// The lock is an nftables table of gocr's own, "gocr-lock-PID" (PID: the
// tree's root as its images name it), in the network namespace the
// connections are in, with an input and an output chain holding one drop
// rule per connection and direction; a tree in a network namespace of
// its own gets its whole namespace locked instead (LockAll), as CRIU
// locks a container's. Dump makes it (Add, LockAll); restore, a
// failed dump, a dump that leaves the tree running and the watchdog of a
// gocr that died remove it (Remove). A tree in a network namespace of its
// own takes the table with it when it dies.
package netlock

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Conn is one TCP connection: its two ends as the local socket sees them.
type Conn struct {
	Local, Peer netip.AddrPort
}

// ErrNoNftables says the kernel has no nftables to lock with.
var ErrNoNftables = errors.New("nftables")

// ioTimeout bounds each exchange with the kernel's nftables.
const ioTimeout = 5 * time.Second

// TableName is the table of the lock of the tree whose root is pid.
func TableName(pid int) string { return fmt.Sprintf("gocr-lock-%d", pid) }

// connect opens an nftables netlink connection in the network namespace
// of file netns ("" for gocr's own). A kernel without nf_tables is told
// apart first: the netlink library panics on a socket it could not make.
func connect(netns string) (*nftables.Conn, func(), error) {
	c, done, _, err := connectTables(netns)
	return c, done, err
}

// connectTables is connect, with the tables of netns it lists to tell
// whether nftables is there: nfnetlink without nf_tables (a module not
// loaded) answers EINVAL or EOPNOTSUPP to any nftables message.
func connectTables(netns string) (*nftables.Conn, func(), []*nftables.Table, error) {
	if err := haveNetfilter(netns); err != nil {
		return nil, nil, nil, err
	}
	c, done, err := dial(netns)
	if err != nil {
		return nil, nil, nil, err
	}
	tables, err := c.ListTables()
	switch {
	case errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EPROTONOSUPPORT):
		done()
		return nil, nil, nil, fmt.Errorf("%w: netfilter netlink without nf_tables (module not loaded?): %w", ErrNoNftables, err)
	case err != nil:
		done()
		return nil, nil, nil, fmt.Errorf("nftables: list tables: %w", err)
	}
	return c, done, tables, nil
}

// dial opens the nftables connection of connect.
func dial(netns string) (*nftables.Conn, func(), error) {
	// Every answer within a deadline: a kernel that does not answer one
	// of the batch's messages fails the lock instead of hanging the dump.
	deadline := nftables.WithSockOptions(func(c *netlink.Conn) error {
		return c.SetDeadline(time.Now().Add(ioTimeout))
	})
	if netns == "" {
		c, err := nftables.New(deadline)
		if err != nil {
			return nil, nil, fmt.Errorf("nftables: %w", err)
		}
		return c, func() { c.CloseLasting() }, nil //nolint:errcheck
	}
	fd, err := unix.Open(netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("network namespace %s: %w", netns, err)
	}
	c, err := nftables.New(nftables.WithNetNSFd(fd), deadline)
	if err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("nftables in %s: %w", netns, err)
	}
	return c, func() { c.CloseLasting(); unix.Close(fd) }, nil //nolint:errcheck
}

// haveNetfilter makes and closes a NETLINK_NETFILTER socket in netns.
func haveNetfilter(netns string) error {
	try := func() error {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
		if err != nil {
			return fmt.Errorf("%w: no netfilter netlink here (nf_tables not loaded?): %w", ErrNoNftables, err)
		}
		return unix.Close(fd)
	}
	if netns == "" {
		return try()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends in the namespace it joined
		fd, err := unix.Open(netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("network namespace %s: %w", netns, err)
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			errc <- fmt.Errorf("join network namespace %s: %w", netns, err)
			return
		}
		errc <- try()
	}()
	return <-errc
}

// tableChains adds the table name and its input and output chains to the
// batch of c (an existing one is kept).
func tableChains(c *nftables.Conn, name string) (t *nftables.Table, in, out *nftables.Chain) {
	t = c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: name})
	accept := nftables.ChainPolicyAccept
	in = c.AddChain(&nftables.Chain{Name: "input", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	out = c.AddChain(&nftables.Chain{Name: "output", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	return t, in, out
}

// RepairMark is the packet mark the lock of a whole namespace lets
// through: CRIU's SOCCR_MARK, which its tools and tests set on the
// packets they mean to pass a locked namespace.
const RepairMark = 0xC114

// LockAll locks the whole network namespace netns, in the table name:
// every packet in and out is dropped but those marked RepairMark. It is
// the lock of a tree in a network namespace of its own (CRIU's lock of a
// container), which no connection may enter or leave while the tree is
// checkpointed, a new one no more than one of the tree's.
func LockAll(netns, name string) error {
	c, done, err := connect(netns)
	if err != nil {
		return err
	}
	defer done()
	t, in, out := tableChains(c, name)
	mark := make([]byte, 4)
	binary.NativeEndian.PutUint32(mark, RepairMark)
	for _, ch := range []*nftables.Chain{in, out} {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: mark},
			&expr.Verdict{Kind: expr.VerdictDrop},
		}})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: lock the network namespace in table inet %s: %w", name, err)
	}
	return nil
}

// Add locks conns in the table name of netns, making it if needed.
func Add(netns, name string, conns ...Conn) error {
	c, done, err := connect(netns)
	if err != nil {
		return err
	}
	defer done()
	t, in, out := tableChains(c, name)
	for _, k := range conns {
		if k.Local.Addr().Is4() != k.Peer.Addr().Is4() {
			return fmt.Errorf("connection %v → %v: addresses of two families", k.Local, k.Peer)
		}
		// Out: from the local end to the peer; in: from the peer to it.
		c.AddRule(&nftables.Rule{Table: t, Chain: out, Exprs: dropTCP(k.Local, k.Peer)})
		c.AddRule(&nftables.Rule{Table: t, Chain: in, Exprs: dropTCP(k.Peer, k.Local)})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: lock %d connections in table inet %s: %w", len(conns), name, err)
	}
	return nil
}

// Remove deletes the table name of netns; a table that is not there is
// no error.
func Remove(netns, name string) error {
	c, done, err := connect(netns)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrNoNftables) {
			return nil // the namespace is gone, and its table with it; or there never was one
		}
		return err
	}
	defer done()
	if _, err := c.ListTableOfFamily(name, nftables.TableFamilyINet); err != nil {
		return nil // not there
	}
	c.DelTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: name})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: remove table inet %s: %w", name, err)
	}
	return nil
}

// Has says whether the table name exists in netns.
func Has(netns, name string) (bool, error) {
	c, done, err := connect(netns)
	if err != nil {
		return false, err
	}
	defer done()
	_, err = c.ListTableOfFamily(name, nftables.TableFamilyINet)
	return err == nil, nil
}

// dropTCP matches the TCP packets from src to dst and drops them.
func dropTCP(src, dst netip.AddrPort) []expr.Any {
	proto, saddr, daddr := byte(unix.NFPROTO_IPV4), uint32(12), uint32(16)
	if !src.Addr().Is4() {
		proto, saddr, daddr = unix.NFPROTO_IPV6, 8, 24
	}
	s, d := src.Addr().AsSlice(), dst.Addr().AsSlice()
	port := func(p uint16) []byte { return []byte{byte(p >> 8), byte(p)} }
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: saddr, Len: uint32(len(s))},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: s},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: daddr, Len: uint32(len(d))},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: d},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port(src.Port())},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port(dst.Port())},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
}

// Probe says whether nftables tables can be made here: it makes an empty
// table of its own in gocr's network namespace and removes it.
func Probe() (bool, string) {
	name := fmt.Sprintf("gocr-probe-%d", os.Getpid())
	c, done, err := connect("")
	if err != nil {
		return false, err.Error()
	}
	defer done()
	c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: name})
	if err := c.Flush(); err != nil {
		return false, fmt.Sprintf("nftables: make a table: %v", err)
	}
	c.DelTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: name})
	if err := c.Flush(); err != nil {
		return false, fmt.Sprintf("nftables: remove table %s: %v", name, err)
	}
	return true, "nftables: an inet table can be made and removed"
}

// ForeignTables lists the nftables tables of netns that are not a lock of
// gocr's: rules a tree's namespace holds, which the restore does not make
// yet. A kernel without nftables has none.
func ForeignTables(netns string) ([]string, error) {
	_, done, tables, err := connectTables(netns)
	if errors.Is(err, ErrNoNftables) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer done()
	var out []string
	for _, t := range tables {
		if !strings.HasPrefix(t.Name, "gocr-lock-") {
			out = append(out, fmt.Sprintf("%s %s", familyName(t.Family), t.Name))
		}
	}
	return out, nil
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyARP:
		return "arp"
	case nftables.TableFamilyBridge:
		return "bridge"
	case nftables.TableFamilyNetdev:
		return "netdev"
	}
	return fmt.Sprintf("family %d", f)
}
