package creds

import (
	"strings"
	"testing"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/creds"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/gocr/gocr/engine/procfs"
)

func TestWithin(t *testing.T) {
	user := procfs.TaskStatus{Uid: [4]uint32{1000, 1000, 1000, 1000}, Gid: [4]uint32{1000, 1000, 1000, 1000}, Groups: []uint32{1000, 27},
		CapBnd: 1<<41 - 1}
	if FullyPrivileged(user) {
		t.Fatal("uid 1000 without capabilities counted as fully privileged")
	}
	root := procfs.TaskStatus{Uid: [4]uint32{}, CapEff: 1<<41 - 1&^(1<<24)}
	if !FullyPrivileged(root) {
		t.Fatal("root without CAP_SYS_RESOURCE is still fully privileged for gocr")
	}
	u := func(v uint32) *uint32 { return &v }
	mine := func() *creds.CredsEntry {
		return &creds.CredsEntry{Uid: u(1000), Euid: u(1000), Suid: u(1000), Fsuid: u(1000),
			Gid: u(1000), Egid: u(1000), Sgid: u(1000), Fsgid: u(1000), Groups: []uint32{27},
			CapEff: []uint32{0, 0}, CapPrm: []uint32{0, 0}, CapInh: []uint32{0, 0}, CapBnd: []uint32{0xffffffff, 0x1ff}}
	}
	if err := Within(mine(), user); err != nil {
		t.Fatalf("the user's own credentials refused: %v", err)
	}
	for name, tamper := range map[string]func(c *creds.CredsEntry){
		"euid":    func(c *creds.CredsEntry) { c.Euid = u(0) },
		"fsuid":   func(c *creds.CredsEntry) { c.Fsuid = u(0) },
		"sgid":    func(c *creds.CredsEntry) { c.Sgid = u(0) },
		"groups":  func(c *creds.CredsEntry) { c.Groups = []uint32{0} },
		"cap_eff": func(c *creds.CredsEntry) { c.CapEff = []uint32{1 << 21, 0} },
		"cap_prm": func(c *creds.CredsEntry) { c.CapPrm = []uint32{0, 1} },
		"cap_bnd": func(c *creds.CredsEntry) { c.CapBnd = []uint32{0xffffffff, 0xffffffff} },
	} {
		c := mine()
		tamper(c)
		err := Within(c, user)
		if err == nil || !strings.Contains(err.Error(), "creds."+name) {
			t.Errorf("%s raised: got %v, want an error naming creds.%s", name, err, name)
		}
	}
}

func TestCapAmbRoundTrip(t *testing.T) {
	c := Dump(procfs.TaskStatus{CapAmb: 1<<34 | 1<<5}, 0)
	got, err := CapAmb(c)
	if err != nil || got != 1<<34|1<<5 {
		t.Fatalf("CapAmb = %#x, %v; want %#x", got, err, uint64(1<<34|1<<5))
	}
	// CRIU's own writer may pack the repeated field.
	var packed []byte
	packed = protowire.AppendVarint(packed, 0x20)
	packed = protowire.AppendVarint(packed, 0x4)
	raw := protowire.AppendTag(nil, credsCapAmbField, protowire.BytesType)
	raw = protowire.AppendBytes(raw, packed)
	c2 := &creds.CredsEntry{}
	c2.ProtoReflect().SetUnknown(raw)
	if got, err := CapAmb(c2); err != nil || got != 1<<34|1<<5 {
		t.Fatalf("packed CapAmb = %#x, %v", got, err)
	}
	// Three words is damage, named.
	raw = nil
	for i := 0; i < 3; i++ {
		raw = protowire.AppendTag(raw, credsCapAmbField, protowire.VarintType)
		raw = protowire.AppendVarint(raw, 1)
	}
	c2.ProtoReflect().SetUnknown(raw)
	if _, err := CapAmb(c2); err == nil || !strings.Contains(err.Error(), "cap_amb") {
		t.Fatalf("three words: %v, want an error naming cap_amb", err)
	}
}
