package creds

import (
	"fmt"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/creds"
	"google.golang.org/protobuf/encoding/protowire"
)

// The ambient capability set lives in CRIU 4.2's creds_entry.cap_amb
// (field 19, repeated uint32: the low and high words), which go-criu v7's
// generated type lacks. gocr writes and reads it as the message's unknown
// fields, where CRIU's crit and restore find it.
const credsCapAmbField = 19

// setCapAmb puts the ambient set amb in c as cap_amb.
func setCapAmb(c *creds.CredsEntry, amb uint64) {
	raw := c.ProtoReflect().GetUnknown()
	for _, w := range []uint32{uint32(amb), uint32(amb >> 32)} {
		raw = protowire.AppendTag(raw, credsCapAmbField, protowire.VarintType)
		raw = protowire.AppendVarint(raw, uint64(w))
	}
	c.ProtoReflect().SetUnknown(raw)
}

// CapAmb reads cap_amb back (0 for an image without it, as CRIU before
// 4.0 wrote), packed or not; a damaged field is an error naming it.
func CapAmb(c *creds.CredsEntry) (uint64, error) {
	var words []uint32
	raw := c.ProtoReflect().GetUnknown()
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 {
			return 0, fmt.Errorf("creds: unknown fields: %w", protowire.ParseError(n))
		}
		raw = raw[n:]
		switch {
		case num == credsCapAmbField && typ == protowire.VarintType:
			v, m := protowire.ConsumeVarint(raw)
			if m < 0 {
				return 0, fmt.Errorf("creds.cap_amb: %w", protowire.ParseError(m))
			}
			raw = raw[m:]
			words = append(words, uint32(v))
		case num == credsCapAmbField && typ == protowire.BytesType:
			packed, m := protowire.ConsumeBytes(raw)
			if m < 0 {
				return 0, fmt.Errorf("creds.cap_amb: %w", protowire.ParseError(m))
			}
			raw = raw[m:]
			for len(packed) > 0 {
				v, k := protowire.ConsumeVarint(packed)
				if k < 0 {
					return 0, fmt.Errorf("creds.cap_amb: %w", protowire.ParseError(k))
				}
				packed = packed[k:]
				words = append(words, uint32(v))
			}
		default:
			m := protowire.ConsumeFieldValue(num, typ, raw)
			if m < 0 {
				return 0, fmt.Errorf("creds: unknown field %d: %w", num, protowire.ParseError(m))
			}
			raw = raw[m:]
		}
	}
	if len(words) > 2 {
		return 0, fmt.Errorf("creds.cap_amb: %d words, want at most 2", len(words))
	}
	return capWords(words), nil
}
