package engine

// Process-wide state of the address space that only the task can read,
// by injected calls, and restore sets the same way: transparent huge
// pages disabled by prctl(PR_SET_THP_DISABLE) (CRIU's mm.thp_disabled),
// and the membarrier(2) registrations (CRIU's
// tc.membarrier_registration_mask, core.proto field 22, which go-criu's
// generated TaskCoreEntry lacks: gocr writes and reads it as that field's
// bytes, so CRIU and crit see it where they look).

import (
	"errors"
	"fmt"

	criu_core "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-core"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/mm"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/gocr/gocr/engine/remote"
)

// membarrier(2) commands (include/uapi/linux/membarrier.h): each
// registration command is its barrier command shifted left by one.
const (
	membarrierPrivateExpedited         = 1 << 3
	membarrierPrivateExpeditedSyncCore = 1 << 5
	membarrierPrivateExpeditedRseq     = 1 << 7
	membarrierGetRegistrations         = 1 << 9 // 6.3
	// membarrierRegistrations are the REGISTER commands: global
	// expedited, private expedited, sync-core, rseq.
	membarrierRegistrations = 1<<2 | 1<<4 | 1<<6 | 1<<8
)

// tcMembarrierField is TaskCoreEntry's membarrier_registration_mask.
const tcMembarrierField protowire.Number = 22

// prThpDisableExceptAdvised is what PR_GET_THP_DISABLE adds (bit 1) when
// THP was disabled only where not asked for by madvise (6.18).
const prThpDisableExceptAdvised = 1 << 1

// dumpMMState reads the THP prctl and the membarrier registrations of the
// task into its images.
func dumpMMState(t *remote.Task, e *mm.MmEntry, tc *criu_core.TaskCoreEntry) error {
	thp, err := t.Syscall(unix.SYS_PRCTL, unix.PR_GET_THP_DISABLE)
	if err != nil {
		return fmt.Errorf("get THP disable: %w", err)
	}
	switch thp {
	case 0, 1:
		e.ThpDisabled = ptr(thp == 1)
	default:
		what := fmt.Sprintf("%d", thp)
		if thp == 1|prThpDisableExceptAdvised {
			what = "disabled except where madvise asks for them (PR_THP_DISABLE_EXCEPT_ADVISED)"
		}
		return fmt.Errorf("transparent huge pages %s: CRIU's mm image has only on or off; not supported", what)
	}
	mask, err := t.Syscall(unix.SYS_MEMBARRIER, membarrierGetRegistrations, 0, 0)
	switch {
	case errors.Is(err, unix.EINVAL):
		// Before 6.3: a private expedited barrier of a kind succeeds
		// only in a process registered for it (CRIU does the same). A
		// global expedited registration cannot be told this way.
		mask = 0
		for _, cmd := range []uint64{membarrierPrivateExpedited, membarrierPrivateExpeditedSyncCore, membarrierPrivateExpeditedRseq} {
			_, err := t.Syscall(unix.SYS_MEMBARRIER, cmd, 0, 0)
			switch {
			case err == nil:
				mask |= cmd << 1
			case errors.Is(err, unix.EPERM), errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS):
			default:
				return fmt.Errorf("membarrier %#x: %w", cmd, err)
			}
		}
	case errors.Is(err, unix.ENOSYS):
		mask = 0
	case err != nil:
		return fmt.Errorf("membarrier get registrations: %w", err)
	}
	if mask&^membarrierRegistrations != 0 {
		return fmt.Errorf("membarrier registrations %#x: unknown kinds %#x; not supported", mask, mask&^membarrierRegistrations)
	}
	if mask != 0 {
		setMembarrierMask(tc, uint32(mask))
	}
	return nil
}

// restoreMMState sets the THP prctl and the membarrier registrations the
// image has. The stub may have inherited THP disabled from gocr's parent
// (the prctl survives fork and exec): it is set either way.
func (r *procRestorer) restoreMMState() error {
	t := r.t
	want := uint64(0)
	if r.img.mm.GetThpDisabled() {
		want = 1
	}
	thp, err := t.Syscall(unix.SYS_PRCTL, unix.PR_GET_THP_DISABLE)
	if err != nil {
		return fmt.Errorf("get THP disable: %w", err)
	}
	if thp != want {
		if _, err := t.Syscall(unix.SYS_PRCTL, unix.PR_SET_THP_DISABLE, want, 0, 0, 0); err != nil {
			return fmt.Errorf("set THP disable %d: %w", want, err)
		}
	}
	mask, ok, err := membarrierMask(r.img.cores[r.vpid].GetTc())
	if err != nil || !ok {
		return err
	}
	for bit := uint64(1); bit <= membarrierRegistrations; bit <<= 1 {
		if uint64(mask)&bit == 0 {
			continue
		}
		if _, err := t.Syscall(unix.SYS_MEMBARRIER, bit, 0, 0); err != nil {
			return fmt.Errorf("membarrier register %#x: %w", bit, err)
		}
	}
	return nil
}

// checkMMState refuses membarrier registrations restore does not know.
func checkMMState(img *restoreImages) error {
	for _, p := range img.procs {
		if p.zombie {
			continue
		}
		mask, _, err := membarrierMask(p.cores[p.pid].GetTc())
		if err == nil && mask&^membarrierRegistrations != 0 {
			err = fmt.Errorf("%#x: unknown kinds %#x", mask, mask&^membarrierRegistrations)
		}
		if err != nil {
			return fmt.Errorf("core-%d.img: tc.membarrier_registration_mask: %w", p.pid, err)
		}
		if d := p.mm.Dumpable; d != nil && *d != 0 && *d != 1 {
			return fmt.Errorf("mm-%d.img: dumpable %d (fs.suid_dumpable's SUID_DUMP_ROOT): prctl(PR_SET_DUMPABLE) sets only 0 or 1; not supported", p.pid, *d)
		}
	}
	return nil
}

// setMembarrierMask records the mask as field 22 of the task core.
func setMembarrierMask(tc *criu_core.TaskCoreEntry, mask uint32) {
	m := tc.ProtoReflect()
	b := protowire.AppendTag(nil, tcMembarrierField, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(mask))
	m.SetUnknown(append(m.GetUnknown(), b...))
}

// membarrierMask reads field 22 of the task core, if it is there.
func membarrierMask(tc *criu_core.TaskCoreEntry) (mask uint32, ok bool, err error) {
	if tc == nil {
		return 0, false, nil
	}
	b := tc.ProtoReflect().GetUnknown()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, false, protowire.ParseError(n)
		}
		b = b[n:]
		if num == tcMembarrierField && typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return 0, false, protowire.ParseError(n)
			}
			if v > 0xffffffff {
				return 0, false, fmt.Errorf("%#x: not a uint32", v)
			}
			mask, ok = uint32(v), true
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0, false, protowire.ParseError(n)
		}
		b = b[n:]
	}
	return mask, ok, nil
}
