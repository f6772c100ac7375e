package engine

import (
	"fmt"

	criu_core "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-core"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/creds"
	"github.com/gocr/gocr/engine/procfs"
	"github.com/gocr/gocr/engine/seccomp"
)

// The restore side of seccomp (the dump side is in tree.go's
// suspendSeccomp and readThread; the image is package seccomp's).
//
// A task's seccomp mode is set last, after its credentials and
// no_new_privs, just before its registers are put back (finish): once set,
// it would judge every call injected after it, were the stubs not traced
// with PTRACE_O_SUSPEND_SECCOMP (see spawn), which they inherit from the
// root's stub. Filters are installed oldest first, the ones every thread
// of the process shares once, with SECCOMP_FILTER_FLAG_TSYNC from the
// leader, so that they are shared again (seccomp.SharedPrefix); strict
// mode is the very last call of its thread but the final munmap.

// filtersFirst says whether the process's filters must go in before its
// credentials: the kernel installs a filter only for a thread with
// no_new_privs or CAP_SYS_ADMIN, and a thread that had neither had its
// filters installed while it was more privileged.
func (r *procRestorer) filtersFirst() bool {
	for _, tid := range r.img.tids {
		if r.img.seccomp[tid].Mode != criu_core.SeccompMode_filter {
			continue
		}
		c := r.img.cores[tid].GetThreadCore().GetCreds()
		if c == nil {
			continue // it keeps the stub's, which may install anything
		}
		eff := c.GetCapEff()
		sysAdmin := len(eff) > 0 && eff[0]&(1<<unix.CAP_SYS_ADMIN) != 0
		if !creds.NoNewPrivs(c) && !sysAdmin {
			return true
		}
	}
	return false
}

// installFilters installs the filter chain of every thread in filter mode.
func (r *procRestorer) installFilters() error {
	threads := make([]seccomp.Thread, len(r.img.tids))
	for i, tid := range r.img.tids {
		threads[i] = r.img.seccomp[tid]
	}
	shared := seccomp.SharedPrefix(threads)
	for i, f := range threads[0].Chain[:shared] {
		if err := seccomp.Install(r.t, 0, f, f.Flags|unix.SECCOMP_FILTER_FLAG_TSYNC); err != nil {
			return fmt.Errorf("thread %d: seccomp filter %d, for all %d threads: %w", r.vpid, i, len(threads), err)
		}
	}
	for i, tid := range r.img.tids {
		if threads[i].Mode != criu_core.SeccompMode_filter {
			continue
		}
		for j, f := range threads[i].Chain[shared:] {
			if err := seccomp.Install(r.threads[tid], 0, f, f.Flags); err != nil {
				return fmt.Errorf("thread %d: seccomp filter %d: %w", tid, shared+j, err)
			}
		}
	}
	return nil
}

// restoreSeccomp sets each thread's seccomp mode: filters (unless they went
// in before the credentials), then strict mode; and checks that the kernel
// shows each thread as the image has it.
func (r *procRestorer) restoreSeccomp() error {
	if len(r.img.seccomp) == 0 {
		return nil
	}
	if !r.filtersFirst() {
		if err := r.installFilters(); err != nil {
			return err
		}
	}
	for _, tid := range r.img.tids {
		if r.img.seccomp[tid].Mode != criu_core.SeccompMode_strict {
			continue
		}
		if err := seccomp.Strict(r.threads[tid]); err != nil {
			return fmt.Errorf("thread %d: %w", tid, err)
		}
	}
	// CRIU writes the chain of threads that share it to the leader alone,
	// with SECCOMP_FILTER_FLAG_TSYNC, and the others as disabled.
	tsync := false
	for _, th := range r.img.seccomp {
		for _, f := range th.Chain {
			tsync = tsync || f.Flags&unix.SECCOMP_FILTER_FLAG_TSYNC != 0
		}
	}
	for _, tid := range r.img.tids {
		want := r.img.seccomp[tid]
		if tsync && want.Mode == criu_core.SeccompMode_disabled {
			continue
		}
		st, err := procfs.ThreadStatus(r.pid, r.hostTid[tid])
		if err != nil {
			return fmt.Errorf("thread %d: %w", tid, err)
		}
		if criu_core.SeccompMode(st.Seccomp) != want.Mode || (st.SeccompFilters != 0 && st.SeccompFilters != len(want.Chain)) {
			return fmt.Errorf("thread %d: seccomp mode %s with %d filters restored, the image has %s with %d",
				tid, criu_core.SeccompMode(st.Seccomp), st.SeccompFilters, want.Mode, len(want.Chain))
		}
	}
	return nil
}
