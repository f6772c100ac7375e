package creds

import (
	"github.com/checkpoint-restore/go-criu/v7/crit/images/creds"
	"google.golang.org/protobuf/encoding/protowire"
)

// noNewPrivsField is creds.proto's `optional uint32 no_new_privs = 18`:
// CRIU's, absent from the CredsEntry go-criu v7.2 generates. gocr keeps it
// as an unknown field of the message, which protobuf writes and reads back
// as is, so CRIU and gocr read the same bytes.
const noNewPrivsField protowire.Number = 18

// SetNoNewPrivs records the thread's no_new_privs bit (per thread, like
// the rest of the credentials); off leaves the field out, as CRIU does.
func SetNoNewPrivs(c *creds.CredsEntry, on bool) {
	m := c.ProtoReflect()
	rest := dropField(m.GetUnknown(), noNewPrivsField)
	if on {
		rest = protowire.AppendTag(rest, noNewPrivsField, protowire.VarintType)
		rest = protowire.AppendVarint(rest, 1)
	}
	m.SetUnknown(rest)
}

// NoNewPrivs reports the no_new_privs bit the image has for the thread.
func NoNewPrivs(c *creds.CredsEntry) bool {
	if c == nil {
		return false
	}
	b := []byte(c.ProtoReflect().GetUnknown())
	on := false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return on
		}
		b = b[n:]
		if num == noNewPrivsField && typ == protowire.VarintType {
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return on
			}
			on = v != 0
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return on
		}
		b = b[m:]
	}
	return on
}

// dropField returns the unknown bytes without field num.
func dropField(b []byte, num protowire.Number) []byte {
	var out []byte
	for len(b) > 0 {
		n, typ, tn := protowire.ConsumeTag(b)
		if tn < 0 {
			return out
		}
		vn := protowire.ConsumeFieldValue(n, typ, b[tn:])
		if vn < 0 {
			return out
		}
		if n != num {
			out = append(out, b[:tn+vn]...)
		}
		b = b[tn+vn:]
	}
	return out
}
