package kernel

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestABISizes(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"clone_args (VER1)", unsafe.Sizeof(cloneArgs{}), unix.CLONE_ARGS_SIZE_VER1},
		{"uffdio_api", unsafe.Sizeof(uffdioAPI{}), 24},
		{"ptrace_rseq_configuration", unsafe.Sizeof(ptraceRseqConfiguration{}), 24},
		{"ptrace_peeksiginfo_args", unsafe.Sizeof(ptracePeeksiginfoArgs{}), 16},
		{"UFFDIO_API", uffdioAPIIoctl, 0xc018aa3f},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
	if unix.CAP_CHECKPOINT_RESTORE != capCheckpointRestore || unix.CAP_SYS_RESOURCE != capSysResource {
		t.Error("capability numbers disagree with x/sys/unix")
	}
}
