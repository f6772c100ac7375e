package files

import (
	"testing"
	"unsafe"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pipe"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/regfile"
)

// struct f_owner_ex is two ints (include/uapi/asm-generic/fcntl.h).
func TestFOwnerExSize(t *testing.T) {
	if got := unsafe.Sizeof(fOwnerEx{}); got != 8 {
		t.Fatalf("f_owner_ex: %d bytes, want 8", got)
	}
}

// The owner and flags are found in whichever kind-specific message the
// entry has.
func TestEntryFownAndFlags(t *testing.T) {
	o := noOwner()
	reg := &fdinfo.FileEntry{Reg: &regfile.RegFileEntry{Flags: ptr(uint32(0o20002)), Fown: o}}
	if got := entryFown(reg); got != o {
		t.Errorf("reg: fown %v, want the entry's own", got)
	}
	if fl, ok := entryFlags(reg); !ok || fl != 0o20002 {
		t.Errorf("reg: flags %#o %v, want 0o20002", fl, ok)
	}
	p := &fdinfo.FileEntry{Pipe: &pipe.PipeEntry{Flags: ptr(uint32(0)), Fown: noOwner()}}
	if entryFown(p) == nil {
		t.Error("pipe: no fown found")
	}
	if entryFown(&fdinfo.FileEntry{}) != nil {
		t.Error("an entry with no kind has a fown")
	}
}
