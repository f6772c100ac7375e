package engine

import (
	"testing"

	criu_core "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-core"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// The membarrier mask goes where CRIU's core.proto has it (field 22 of
// task_core_entry) and survives a marshal and unmarshal beside the
// fields go-criu knows.
func TestMembarrierMaskField(t *testing.T) {
	tc := &criu_core.TaskCoreEntry{Comm: ptr("w"), ChildSubreaper: ptr(true)}
	if _, ok, err := membarrierMask(tc); ok || err != nil {
		t.Fatalf("empty core: ok %v, %v", ok, err)
	}
	setMembarrierMask(tc, 0x14)
	b, err := proto.MarshalOptions{AllowPartial: true}.Marshal(tc)
	if err != nil {
		t.Fatal(err)
	}
	// The raw bytes hold tag 22, varint 0x14.
	want := protowire.AppendVarint(protowire.AppendTag(nil, 22, protowire.VarintType), 0x14)
	found := false
	for rest := b; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		m := protowire.ConsumeFieldValue(num, typ, rest[n:])
		if string(rest[:n+m]) == string(want) {
			found = true
		}
		rest = rest[n+m:]
	}
	if !found {
		t.Errorf("field 22 not in %x", b)
	}
	back := &criu_core.TaskCoreEntry{}
	if err := (proto.UnmarshalOptions{AllowPartial: true}).Unmarshal(b, back); err != nil {
		t.Fatal(err)
	}
	if m, ok, err := membarrierMask(back); !ok || err != nil || m != 0x14 || back.GetComm() != "w" {
		t.Errorf("read back %#x ok %v err %v comm %q", m, ok, err, back.GetComm())
	}
}
