package abi

// RseqCSOffset is where struct rseq keeps rseq_cs, the u64 address of the
// critical section the thread is in (after cpu_id_start and cpu_id).
const RseqCSOffset = 8

// RseqCS is struct rseq_cs, the descriptor of an rseq critical section:
// the section is [StartIP, StartIP+PostCommitOffset), and the kernel sends
// a thread preempted, migrated or signalled inside it to AbortIP, which
// follows the thread's registered signature.
type RseqCS struct {
	Version          uint32 // 0
	Flags            uint32
	StartIP          uint64
	PostCommitOffset uint64
	AbortIP          uint64
}

// Contains reports whether ip lies inside the section.
func (cs *RseqCS) Contains(ip uint64) bool { return ip-cs.StartIP < cs.PostCommitOffset }
