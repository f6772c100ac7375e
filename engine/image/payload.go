package image

import (
	"math"

	bpfmap_data "github.com/checkpoint-restore/go-criu/v7/crit/images/bpfmap-data"
	ghost_file "github.com/checkpoint-restore/go-criu/v7/crit/images/ghost-file"
	ipc_msg "github.com/checkpoint-restore/go-criu/v7/crit/images/ipc-msg"
	ipc_sem "github.com/checkpoint-restore/go-criu/v7/crit/images/ipc-sem"
	ipc_shm "github.com/checkpoint-restore/go-criu/v7/crit/images/ipc-shm"
	pipe_data "github.com/checkpoint-restore/go-criu/v7/crit/images/pipe-data"
	sk_packet "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-packet"
	tcp_stream "github.com/checkpoint-restore/go-criu/v7/crit/images/tcp-stream"
	"google.golang.org/protobuf/proto"

	"github.com/gocr/gocr/engine/image/gocrpb"
)

// payload is the raw data that follows an entry: n bytes, then zero
// padding up to padded bytes. toEOF means the data runs to the end of the
// file (a ghost file stored in one piece).
type payload struct {
	n, padded uint64
	toEOF     bool
}

// payloadOf says how much raw data follows message m in its image, the way
// CRIU writes it and crit reads it. Messages without payload get zero.
func payloadOf(m proto.Message) payload {
	plain := func(n uint64) payload { return payload{n: n, padded: n} }
	switch e := m.(type) {
	case *pipe_data.PipeDataEntry:
		return plain(uint64(e.GetBytes()))
	case *sk_packet.SkPacketEntry:
		return plain(uint64(e.GetLength()))
	case *tcp_stream.TcpStreamEntry:
		return plain(uint64(e.GetInqLen()) + uint64(e.GetOutqLen()))
	case *bpfmap_data.BpfmapDataEntry:
		return plain(uint64(e.GetKeysBytes()) + uint64(e.GetValuesBytes()))
	case *ipc_shm.IpcShmEntry:
		if e.GetInPagemaps() {
			return payload{} // CRIU ≥ 3.14 keeps the pages in pagemap-shmem-<id>.img
		}
		return payload{n: e.GetSize(), padded: roundUp(e.GetSize(), 4)}
	case *ipc_sem.IpcSemEntry:
		n := 2 * uint64(e.GetNsems())
		return payload{n: n, padded: roundUp(n, 8)}
	case *ipc_msg.IpcMsg:
		n := uint64(e.GetMsize())
		return payload{n: n, padded: roundUp(n, 8)}
	case *gocrpb.MqueueMsg:
		n := uint64(e.GetSize())
		return payload{n: n, padded: roundUp(n, 8)}
	case *ghost_file.GhostChunkEntry:
		return plain(e.GetLen())
	case *ghost_file.GhostFileEntry:
		if e.GetChunks() {
			return payload{}
		}
		return payload{toEOF: true}
	}
	return payload{}
}

// roundUp rounds n up to a multiple of the power of two a; it saturates
// instead of wrapping so a hostile size can never look small.
func roundUp(n, a uint64) uint64 {
	if n > math.MaxUint64-(a-1) {
		return math.MaxUint64
	}
	return (n + a - 1) &^ (a - 1)
}
