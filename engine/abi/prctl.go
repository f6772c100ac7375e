package abi

// PrctlMMMap is struct prctl_mm_map (include/uapi/linux/prctl.h), the whole
// mm layout set in one prctl(PR_SET_MM, PR_SET_MM_MAP, &map, sizeof map).
// Auxv points to AuxvSize bytes in the caller's memory; ExeFd names the new
// /proc/PID/exe (or -1 to leave it).
type PrctlMMMap struct {
	StartCode  uint64
	EndCode    uint64
	StartData  uint64
	EndData    uint64
	StartBrk   uint64
	Brk        uint64
	StartStack uint64
	ArgStart   uint64
	ArgEnd     uint64
	EnvStart   uint64
	EnvEnd     uint64
	Auxv       uint64
	AuxvSize   uint32
	ExeFd      uint32
}

// PR_SET_MM sub-commands (x/sys/unix has PR_SET_MM, PR_SET_MM_MAP and
// PR_SET_MM_MAP_SIZE under the same names).
const (
	PrSetMM        = 0x23 // PR_SET_MM
	PrSetMMMap     = 14   // PR_SET_MM_MAP
	PrSetMMMapSize = 15   // PR_SET_MM_MAP_SIZE: ask the kernel for sizeof(prctl_mm_map)
)
