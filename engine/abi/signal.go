package abi

// Siginfo is a raw siginfo_t (128 bytes). Only the head is decoded here; the
// union is kept as bytes because images and rt_sigqueueinfo carry it whole.
type Siginfo struct {
	Signo int32
	Errno int32
	Code  int32
	_     int32 // padding before the 8-aligned union
	Data  [112]byte
}

// Pid is si_pid for kill-style and queued signals (SI_USER, SI_QUEUE, SI_TKILL).
func (s *Siginfo) Pid() int32 { return int32(le32(s.Data[0:4])) }

// Uid is si_uid for kill-style and queued signals.
func (s *Siginfo) Uid() uint32 { return le32(s.Data[4:8]) }

// Value is si_value (sival_int/sival_ptr) of a queued signal.
func (s *Siginfo) Value() uint64 { return uint64(le32(s.Data[8:12])) | uint64(le32(s.Data[12:16]))<<32 }

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// si_code values (include/uapi/asm-generic/siginfo.h).
const (
	SI_USER    = 0
	SI_KERNEL  = 0x80
	SI_QUEUE   = -1
	SI_TIMER   = -2
	SI_MESGQ   = -3
	SI_ASYNCIO = -4
	SI_SIGIO   = -5
	SI_TKILL   = -6
)

// KernelSigaction is the x86_64 struct sigaction rt_sigaction takes, which
// is not glibc's: handler, flags, restorer, then a 64-bit mask.
type KernelSigaction struct {
	Handler  uint64
	Flags    uint64
	Restorer uint64
	Mask     uint64
}

// Special handlers and sa_flags (include/uapi/asm-generic/signal-defs.h,
// arch/x86/include/uapi/asm/signal.h).
const (
	SIG_DFL = 0
	SIG_IGN = 1

	SA_NOCLDSTOP = 0x00000001
	SA_NOCLDWAIT = 0x00000002
	SA_SIGINFO   = 0x00000004
	SA_RESTORER  = 0x04000000
	SA_ONSTACK   = 0x08000000
	SA_RESTART   = 0x10000000
	SA_NODEFER   = 0x40000000
	SA_RESETHAND = 0x80000000
)

// StackT is stack_t for sigaltstack.
type StackT struct {
	Sp    uint64
	Flags int32
	_     int32
	Size  uint64
}

// sigaltstack ss_flags.
const (
	SS_ONSTACK    = 1
	SS_DISABLE    = 2
	SS_AUTODISARM = 1 << 31
)

// NSIG is the number of signals (1..64); a kernel sigset is SigsetSize bytes.
const (
	NSIG       = 64
	SigsetSize = 8
)

// SigBit is the bit of signal sig in a kernel sigset.
func SigBit(sig int) uint64 { return 1 << (uint(sig) - 1) }

// Sigevent is struct sigevent as timer_create(2) takes it (64 bytes): the
// value the signal carries, its number, how it is delivered
// (SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD_ID|SIGEV_SIGNAL) and, with
// SIGEV_THREAD_ID, the thread it goes to.
type Sigevent struct {
	Value  uint64
	Signo  int32
	Notify int32
	Tid    int32
	_      [44]byte
}

// Itimerspec is struct itimerspec of timer_settime(2) and timer_gettime(2).
type Itimerspec struct {
	IntervalSec, IntervalNsec int64
	ValueSec, ValueNsec       int64
}
