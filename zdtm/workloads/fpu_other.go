//go:build !amd64

package workloads

import (
	"errors"
	"runtime"
)

var errNoFpuAsm = errors.New("the FPU workloads have assembly for amd64 only, not " + runtime.GOARCH)

func fpuBest() (fpuMode, error) { return fpuSSE, errNoFpuAsm }

func fpuBlockingRead(fpuMode, int, *byte, *fpuState, *fpuState) (int, error) {
	return 0, errNoFpuAsm
}
