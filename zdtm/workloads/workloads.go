// Package workloads holds gocr's zdtm workloads: each sets up some kernel
// state, says it is ready, waits for SIGTERM and checks that the state
// survived. Each has a descriptor NAME.desc beside it in CRIU's syntax.
package workloads

import (
	"embed"

	"github.com/gocr/gocr/zdtm/lib"
)

// All lists every workload of the multi-call binary zdtm-workload.
func All() []lib.Workload {
	return []lib.Workload{
		Counter,
		TCPRefused,
		TCPEstablished,
		TCPBacklogRefused,
		UDPQueueRefused,
		TCPClose,
		PidfdChild,
		RedisServer,
		NginxServer,
		Threads,
		Heap256M,
		Sigpending,
		FileOffset,
		FileMmap,
		CwdUmask,
		Rlimits,
		Itimer,
		FpuSyscall,
		AvxSyscall,
		GoPipeline,
		BlockedRead,
		BlockedNanosleep,
		BlockedFutex,
		BlockedEpoll,
		GhostSparse,
		GhostLimit,
		GhostMmap,
		LinkRemap,
		CwdDeleted,
		FileLocks,
		FileLocksRefused,
		PipeSize,
		SchedAttrs,
		CapsAmbient,
		FileFown,
		SeqpacketShutdown,
		Tmpfile,
		Chroot,
		SeccompTsync,
		NetnsSysctl,
		PidfdDead,
	}
}

// Descriptors holds NAME.desc for every workload of the multi-call binary.
//
//go:embed *.desc
var Descriptors embed.FS

// CDescriptors holds c/NAME.desc for the C workloads, separate binaries
// that zdtm/workloads/c/build.sh builds.
//
//go:embed c/*.desc
var CDescriptors embed.FS
