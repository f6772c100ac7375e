package workloads

import "golang.org/x/sys/cpu"

// fpuSyscall is in fpu_amd64.s.
//
//go:noescape
func fpuSyscall(mode, fd uintptr, buf *byte, in, out *fpuState) (ret uintptr)

// fpuBest returns the widest register set this CPU and kernel support.
func fpuBest() (fpuMode, error) {
	switch {
	case cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW:
		return fpuAVX512, nil
	case cpu.X86.HasAVX:
		return fpuAVX, nil
	}
	return fpuSSE, nil
}

func fpuBlockingRead(mode fpuMode, fd int, buf *byte, in, out *fpuState) (int, error) {
	r := int64(fpuSyscall(uintptr(mode), uintptr(fd), buf, in, out))
	if r < 0 {
		return 0, errnoErr(-r)
	}
	return int(r), nil
}
