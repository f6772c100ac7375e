package files

import (
	"fmt"

	sk_inet "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-inet"
	"google.golang.org/protobuf/encoding/protowire"
)

// Fields of CRIU 4.2's images that go-criu v7's generated types lack,
// kept where CRIU keeps them so its crit reads them: the TCP options of
// any TCP socket, inet_sk_entry.tcp_opts (field 20), a tcp_opts_entry of
// cork (1), nodelay (2), keepcnt (3), keepidle (4) and keepintvl (5).
// gocr writes and reads them as the message's unknown fields.

const inetSkTCPOptsField = 20

// tcpOpts is CRIU 4.2's tcp_opts_entry.
type tcpOpts struct {
	Cork, Nodelay bool
}

// setTCPOpts puts o in e as inet_sk_entry.tcp_opts.
func setTCPOpts(e *sk_inet.InetSkEntry, o tcpOpts) {
	var inner []byte
	b := func(v bool) uint64 {
		if v {
			return 1
		}
		return 0
	}
	inner = protowire.AppendTag(inner, 1, protowire.VarintType)
	inner = protowire.AppendVarint(inner, b(o.Cork))
	inner = protowire.AppendTag(inner, 2, protowire.VarintType)
	inner = protowire.AppendVarint(inner, b(o.Nodelay))
	raw := e.ProtoReflect().GetUnknown()
	raw = protowire.AppendTag(raw, inetSkTCPOptsField, protowire.BytesType)
	raw = protowire.AppendBytes(raw, inner)
	e.ProtoReflect().SetUnknown(raw)
}

// getTCPOpts reads inet_sk_entry.tcp_opts, if the entry has it.
func getTCPOpts(e *sk_inet.InetSkEntry) (tcpOpts, bool, error) {
	var o tcpOpts
	found := false
	raw := e.ProtoReflect().GetUnknown()
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 {
			return o, false, fmt.Errorf("unknown fields: %w", protowire.ParseError(n))
		}
		raw = raw[n:]
		if num != inetSkTCPOptsField || typ != protowire.BytesType {
			m := protowire.ConsumeFieldValue(num, typ, raw)
			if m < 0 {
				return o, false, fmt.Errorf("unknown field %d: %w", num, protowire.ParseError(m))
			}
			raw = raw[m:]
			continue
		}
		inner, m := protowire.ConsumeBytes(raw)
		if m < 0 {
			return o, false, fmt.Errorf("tcp_opts: %w", protowire.ParseError(m))
		}
		raw = raw[m:]
		found = true
		for len(inner) > 0 {
			f, t, k := protowire.ConsumeTag(inner)
			if k < 0 {
				return o, false, fmt.Errorf("tcp_opts: %w", protowire.ParseError(k))
			}
			inner = inner[k:]
			if t != protowire.VarintType {
				k = protowire.ConsumeFieldValue(f, t, inner)
				if k < 0 {
					return o, false, fmt.Errorf("tcp_opts field %d: %w", f, protowire.ParseError(k))
				}
				inner = inner[k:]
				continue
			}
			v, k := protowire.ConsumeVarint(inner)
			if k < 0 {
				return o, false, fmt.Errorf("tcp_opts field %d: %w", f, protowire.ParseError(k))
			}
			inner = inner[k:]
			switch f {
			case 1:
				o.Cork = v != 0
			case 2:
				o.Nodelay = v != 0
			}
		}
	}
	return o, found, nil
}

// ip_opts_entry.tos (6) and ttl (7), CRIU 4.2's, for IPv4 sockets.
const (
	ipOptsTOSField = 6
	ipOptsTTLField = 7
)

// setIPTosTTL puts tos and ttl in o.
func setIPTosTTL(o *sk_inet.IpOptsEntry, tos, ttl uint32) {
	raw := o.ProtoReflect().GetUnknown()
	raw = protowire.AppendTag(raw, ipOptsTOSField, protowire.VarintType)
	raw = protowire.AppendVarint(raw, uint64(tos))
	raw = protowire.AppendTag(raw, ipOptsTTLField, protowire.VarintType)
	raw = protowire.AppendVarint(raw, uint64(ttl))
	o.ProtoReflect().SetUnknown(raw)
}

// getIPTosTTL reads them back; has says which were there.
func getIPTosTTL(o *sk_inet.IpOptsEntry) (tos, ttl uint32, hasTOS, hasTTL bool, err error) {
	raw := o.ProtoReflect().GetUnknown()
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 {
			return 0, 0, false, false, fmt.Errorf("ip_opts unknown fields: %w", protowire.ParseError(n))
		}
		raw = raw[n:]
		if typ == protowire.VarintType && (num == ipOptsTOSField || num == ipOptsTTLField) {
			v, m := protowire.ConsumeVarint(raw)
			if m < 0 {
				return 0, 0, false, false, fmt.Errorf("ip_opts field %d: %w", num, protowire.ParseError(m))
			}
			raw = raw[m:]
			if num == ipOptsTOSField {
				tos, hasTOS = uint32(v), true
			} else {
				ttl, hasTTL = uint32(v), true
			}
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, raw)
		if m < 0 {
			return 0, 0, false, false, fmt.Errorf("ip_opts field %d: %w", num, protowire.ParseError(m))
		}
		raw = raw[m:]
	}
	return tos, ttl, hasTOS, hasTTL, nil
}
