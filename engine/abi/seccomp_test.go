package abi

import (
	"bytes"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A program's bytes are the kernel's struct sock_filter array, little
// endian: code (u16), jt, jf (u8), k (u32).
func TestSockFilterEncoding(t *testing.T) {
	prog := []SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: unix.SYS_GETPPID},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO | 1234},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
	}
	b := EncodeSockFilters(prog)
	if len(b) != len(prog)*SockFilterSize {
		t.Fatalf("%d bytes for %d instructions", len(b), len(prog))
	}
	// Same bytes as the in-memory layout of x/sys's struct.
	xs := make([]unix.SockFilter, len(prog))
	for i, p := range prog {
		xs[i] = unix.SockFilter{Code: p.Code, Jt: p.Jt, Jf: p.Jf, K: p.K}
	}
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&xs[0])), len(xs)*int(unsafe.Sizeof(xs[0])))
	if !bytes.Equal(b, raw) {
		t.Fatalf("encoded %x, kernel layout %x", b, raw)
	}
	back, err := DecodeSockFilters(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range prog {
		if back[i] != prog[i] {
			t.Errorf("[%d] = %+v, want %+v", i, back[i], prog[i])
		}
	}
	if _, err := DecodeSockFilters(b[:len(b)-3]); err == nil {
		t.Error("a program of 29 bytes decoded")
	}
}

func TestSockFprogEncoding(t *testing.T) {
	b := EncodeSockFprog(4, 0x7f0011223344)
	want := []byte{4, 0, 0, 0, 0, 0, 0, 0, 0x44, 0x33, 0x22, 0x11, 0x00, 0x7f, 0, 0}
	if !bytes.Equal(b, want) {
		t.Fatalf("sock_fprog %x, want %x", b, want)
	}
	if off := unsafe.Offsetof(SockFprog{}.Filter); off != 8 {
		t.Fatalf("offsetof(sock_fprog, filter) = %d, want 8", off)
	}
}
