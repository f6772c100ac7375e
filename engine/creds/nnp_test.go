package creds

import (
	"testing"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/creds"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// no_new_privs goes out as CRIU's field 18 and comes back through a
// marshal and unmarshal; setting it twice leaves one field.
func TestNoNewPrivsField(t *testing.T) {
	u := func(v uint32) *uint32 { return &v }
	c := &creds.CredsEntry{Uid: u(1), Gid: u(2), Euid: u(3), Egid: u(4), Suid: u(5), Sgid: u(6), Fsuid: u(7), Fsgid: u(8), Secbits: u(0)}
	if NoNewPrivs(c) || NoNewPrivs(nil) {
		t.Fatal("no_new_privs set on a fresh entry")
	}
	SetNoNewPrivs(c, true)
	SetNoNewPrivs(c, true)
	b, err := proto.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for rest := b; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 {
			t.Fatal("bad tag")
		}
		rest = rest[n:]
		if num == 18 {
			v, _ := protowire.ConsumeVarint(rest)
			if typ != protowire.VarintType || v != 1 {
				t.Errorf("field 18: type %v value %d", typ, v)
			}
			count++
		}
		rest = rest[protowire.ConsumeFieldValue(num, typ, rest):]
	}
	if count != 1 {
		t.Fatalf("field 18 written %d times", count)
	}
	var back creds.CredsEntry
	if err := proto.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !NoNewPrivs(&back) || back.GetFsgid() != 8 {
		t.Fatal("no_new_privs lost through protobuf")
	}
	SetNoNewPrivs(&back, false)
	if NoNewPrivs(&back) || len(back.ProtoReflect().GetUnknown()) != 0 {
		t.Fatal("no_new_privs still set")
	}
}
