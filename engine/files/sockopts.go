package files

import (
	"errors"
	"fmt"
	"unsafe"

	sk_opts "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-opts"
	"golang.org/x/sys/unix"
)

// Socket options of any family (SOL_SOCKET), as sk-opts.SkOptsEntry keeps
// them. Buffer sizes are what getsockopt shows, which is twice what
// setsockopt was given: the kernel doubles it for its bookkeeping.

// dumpSockOpts reads the options of a socket. A socket filter is refused:
// it cannot be read back in a form that can be attached again.
func dumpSockOpts(fd int) (*sk_opts.SkOptsEntry, error) {
	o := &sk_opts.SkOptsEntry{}
	ints := []struct {
		opt int
		set func(v int)
	}{
		{unix.SO_SNDBUF, func(v int) { o.SoSndbuf = ptr(uint32(v)) }},
		{unix.SO_RCVBUF, func(v int) { o.SoRcvbuf = ptr(uint32(v)) }},
		{unix.SO_PRIORITY, func(v int) { o.SoPriority = ptr(uint32(v)) }},
		{unix.SO_RCVLOWAT, func(v int) { o.SoRcvlowat = ptr(uint32(v)) }},
		{unix.SO_MARK, func(v int) { o.SoMark = ptr(uint32(v)) }},
		{unix.SO_PASSCRED, func(v int) { o.SoPasscred = ptr(v != 0) }},
		{unix.SO_PASSSEC, func(v int) { o.SoPasssec = ptr(v != 0) }},
	}
	for _, i := range ints {
		v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, i.opt)
		if unsupportedOpt(err) {
			continue // the protocol has no such option (MPTCP has few): nothing to keep
		}
		if err != nil {
			return nil, fmt.Errorf("getsockopt %d: %w", i.opt, err)
		}
		i.set(v)
	}
	for _, t := range []struct {
		opt       int
		sec, usec **uint64
	}{
		{unix.SO_SNDTIMEO, &o.SoSndTmoSec, &o.SoSndTmoUsec},
		{unix.SO_RCVTIMEO, &o.SoRcvTmoSec, &o.SoRcvTmoUsec},
	} {
		tv, err := unix.GetsockoptTimeval(fd, unix.SOL_SOCKET, t.opt)
		if unsupportedOpt(err) {
			tv, err = &unix.Timeval{}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("getsockopt %d: %w", t.opt, err)
		}
		*t.sec, *t.usec = ptr(uint64(tv.Sec)), ptr(uint64(tv.Usec))
	}
	filter, err := dumpFilter(fd)
	if err != nil {
		return nil, err
	}
	o.SoFilter = filter
	return o, nil
}

// sockFilter is struct sock_filter, one classic BPF instruction; CRIU's
// so_filter keeps each as the 64-bit word of its 8 bytes.
type sockFilter struct {
	Code   uint16
	Jt, Jf uint8
	K      uint32
}

const sizeofSockFilter = 8

// sockFprog is struct sock_fprog.
type sockFprog struct {
	Len    uint16
	_      [6]byte
	Filter *sockFilter
}

const sizeofSockFprog = 16

// dumpFilter reads the classic BPF filter attached to a socket
// (SO_ATTACH_FILTER), if any. getsockopt(SO_GET_FILTER) counts in
// instructions, not bytes. A filter attached as eBPF (SO_ATTACH_BPF) has
// no classic form and is refused.
func dumpFilter(fd int) ([]uint64, error) {
	n, err := filterLen(fd)
	if err != nil || n == 0 {
		return nil, err
	}
	prog := make([]sockFilter, n)
	l := uint32(n)
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_GET_FILTER,
		uintptr(unsafe.Pointer(&prog[0])), uintptr(unsafe.Pointer(&l)), 0); e != 0 {
		return nil, fmt.Errorf("getsockopt SO_GET_FILTER (%d instructions): %w (an eBPF filter, SO_ATTACH_BPF, is not supported)", n, e)
	}
	words := make([]uint64, l)
	for i, f := range prog[:l] {
		words[i] = uint64(f.Code) | uint64(f.Jt)<<16 | uint64(f.Jf)<<24 | uint64(f.K)<<32
	}
	return words, nil
}

// restoreFilter attaches the saved filter again.
func restoreFilter(fd int, words []uint64) error {
	if len(words) == 0 {
		return nil
	}
	if len(words) > 0xffff {
		return fmt.Errorf("so_filter: %d instructions, at most 65535", len(words))
	}
	prog := make([]sockFilter, len(words))
	for i, w := range words {
		prog[i] = sockFilter{Code: uint16(w), Jt: uint8(w >> 16), Jf: uint8(w >> 24), K: uint32(w >> 32)}
	}
	fp := sockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if _, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
		uintptr(unsafe.Pointer(&fp)), sizeofSockFprog, 0); e != 0 {
		return fmt.Errorf("setsockopt SO_ATTACH_FILTER (%d instructions): %w", len(prog), e)
	}
	return nil
}

// unsupportedOpt says an option read failed because the socket's
// protocol does not have it.
func unsupportedOpt(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOPROTOOPT)
}

// filterLen is the number of instructions of the classic BPF filter
// attached to a socket: getsockopt(SO_GET_FILTER) given no room answers
// the length alone (any room at all must hold the whole filter).
func filterLen(fd int) (int, error) {
	var buf [8]byte
	var n uint32
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_GET_FILTER,
		uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
	if e != 0 {
		return 0, fmt.Errorf("getsockopt SO_GET_FILTER: %w", e)
	}
	return int(n), nil
}

// restoreSockOpts sets the saved options on a fresh socket, each only if
// it differs from what the fresh socket has: setting a buffer size also
// pins it (SOCK_SNDBUF_LOCK), which an untouched socket does not have.
func restoreSockOpts(fd int, o *sk_opts.SkOptsEntry) error {
	type intOpt struct {
		get, set int
		want     int
	}
	opts := []intOpt{
		// The FORCE variants go past the sysctl caps, which a socket
		// grown by CAP_NET_ADMIN may have; they take half the value.
		{unix.SO_SNDBUF, unix.SO_SNDBUFFORCE, int(o.GetSoSndbuf())},
		{unix.SO_RCVBUF, unix.SO_RCVBUFFORCE, int(o.GetSoRcvbuf())},
	}
	if o.SoPriority != nil {
		opts = append(opts, intOpt{unix.SO_PRIORITY, unix.SO_PRIORITY, int(o.GetSoPriority())})
	}
	if o.SoRcvlowat != nil {
		opts = append(opts, intOpt{unix.SO_RCVLOWAT, unix.SO_RCVLOWAT, int(o.GetSoRcvlowat())})
	}
	if o.SoMark != nil {
		opts = append(opts, intOpt{unix.SO_MARK, unix.SO_MARK, int(o.GetSoMark())})
	}
	b := func(v bool) int {
		if v {
			return 1
		}
		return 0
	}
	if o.SoPasscred != nil {
		opts = append(opts, intOpt{unix.SO_PASSCRED, unix.SO_PASSCRED, b(o.GetSoPasscred())})
	}
	if o.SoPasssec != nil {
		opts = append(opts, intOpt{unix.SO_PASSSEC, unix.SO_PASSSEC, b(o.GetSoPasssec())})
	}
	for _, op := range opts {
		cur, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, op.get)
		if err != nil {
			return fmt.Errorf("getsockopt %d: %w", op.get, err)
		}
		if cur == op.want {
			continue
		}
		v := op.want
		if op.set == unix.SO_SNDBUFFORCE || op.set == unix.SO_RCVBUFFORCE {
			v /= 2
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, op.set, v); err != nil {
			return fmt.Errorf("setsockopt %d to %d: %w", op.set, v, err)
		}
	}
	if err := restoreFilter(fd, o.GetSoFilter()); err != nil {
		return err
	}
	for _, t := range []struct {
		opt       int
		sec, usec uint64
	}{
		{unix.SO_SNDTIMEO, o.GetSoSndTmoSec(), o.GetSoSndTmoUsec()},
		{unix.SO_RCVTIMEO, o.GetSoRcvTmoSec(), o.GetSoRcvTmoUsec()},
	} {
		if t.sec == 0 && t.usec == 0 {
			continue
		}
		tv := unix.Timeval{Sec: int64(t.sec), Usec: int64(t.usec)}
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, t.opt, &tv); err != nil {
			return fmt.Errorf("setsockopt %d: %w", t.opt, err)
		}
	}
	return nil
}
