package abi

import (
	"encoding/binary"
	"fmt"
)

// SockFilter is struct sock_filter, one classic BPF instruction (8 bytes):
// the unit of a seccomp filter program as PTRACE_SECCOMP_GET_FILTER
// returns it and seccomp(SECCOMP_SET_MODE_FILTER) takes it.
type SockFilter struct {
	Code uint16
	Jt   uint8
	Jf   uint8
	K    uint32
}

// SockFilterSize is sizeof(struct sock_filter).
const SockFilterSize = 8

// SockFprog is struct sock_fprog (16 bytes on 64-bit): a program's length in
// instructions and its address, in the task's memory when injected.
type SockFprog struct {
	Len    uint16
	_      [6]byte
	Filter uint64
}

// SockFprogSize is sizeof(struct sock_fprog).
const SockFprogSize = 16

// SeccompMetadata is struct seccomp_metadata, PTRACE_SECCOMP_GET_METADATA's
// argument (Linux 4.16): the filter's index in, its flags out
// (SECCOMP_FILTER_FLAG_LOG is the only one the kernel reports).
type SeccompMetadata struct {
	FilterOff uint64
	Flags     uint64
}

// SeccompMetadataSize is sizeof(struct seccomp_metadata).
const SeccompMetadataSize = 16

// Seccomp limits (include/linux/filter.h, kernel/seccomp.c).
const (
	// BPFMaxInsns is BPF_MAXINSNS: the most instructions in one filter.
	BPFMaxInsns = 4096
	// SeccompMaxInsnsPerPath is MAX_INSNS_PER_PATH: the kernel refuses a
	// filter that would make the chain longer than this many instructions,
	// counting 4 more per filter.
	SeccompMaxInsnsPerPath = (1 << 18) / SockFilterSize
)

// The seccomp(2) operations gocr injects.
const (
	SeccompSetModeStrict = 0
	SeccompSetModeFilter = 1
)

// DecodeSockFilters splits a program's bytes into instructions; its length
// must be a whole number of them.
func DecodeSockFilters(b []byte) ([]SockFilter, error) {
	if len(b)%SockFilterSize != 0 {
		return nil, fmt.Errorf("seccomp program of %d bytes: not a multiple of %d (sizeof(struct sock_filter))", len(b), SockFilterSize)
	}
	out := make([]SockFilter, len(b)/SockFilterSize)
	for i := range out {
		p := b[i*SockFilterSize:]
		out[i] = SockFilter{Code: binary.LittleEndian.Uint16(p), Jt: p[2], Jf: p[3], K: binary.LittleEndian.Uint32(p[4:])}
	}
	return out, nil
}

// EncodeSockFilters is the inverse of DecodeSockFilters: the bytes of the
// program as the kernel lays it out.
func EncodeSockFilters(insns []SockFilter) []byte {
	b := make([]byte, len(insns)*SockFilterSize)
	for i, in := range insns {
		p := b[i*SockFilterSize:]
		binary.LittleEndian.PutUint16(p, in.Code)
		p[2], p[3] = in.Jt, in.Jf
		binary.LittleEndian.PutUint32(p[4:], in.K)
	}
	return b
}

// EncodeSockFprog lays out a struct sock_fprog for n instructions at addr.
func EncodeSockFprog(n int, addr uint64) []byte {
	b := make([]byte, SockFprogSize)
	binary.LittleEndian.PutUint16(b, uint16(n))
	binary.LittleEndian.PutUint64(b[8:], addr)
	return b
}
