package fault

import (
	"context"
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	s, err := Parse("dump:memory:kill, restore:threads:error")
	if err != nil || len(s) != 2 || s[0].String() != "dump:memory:kill" || s[1].Action != Error {
		t.Fatalf("Parse = %v, %v", s, err)
	}
	for _, bad := range []string{"dump:memory", "dmp:memory:kill", "dump:nosuch:kill", "dump:memory:explode", "restore:memory:kill:x"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	if s, err := Parse(""); err != nil || s != nil {
		t.Errorf("Parse(\"\") = %v, %v", s, err)
	}
}

func TestAt(t *testing.T) {
	s, _ := Parse("dump:files:error")
	ctx := context.Background()
	if err := s.At(ctx, Dump, "memory"); err != nil {
		t.Errorf("At other step: %v", err)
	}
	if err := s.At(ctx, Dump, "files"); !errors.Is(err, ErrInjected) {
		t.Errorf("At files: %v, want ErrInjected", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := Spec(nil).At(cctx, Restore, "read"); !errors.Is(err, context.Canceled) {
		t.Errorf("At with a cancelled context: %v", err)
	}
}
