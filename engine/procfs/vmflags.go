package procfs

import "strings"

// VmFlags is the set of two-letter flags smaps prints on its VmFlags line
// (the kernel's VM_* bits). Mnemonics this package does not know are
// dropped; the dump only acts on the known ones.
type VmFlags uint64

// Known VmFlags, in the kernel's printing order.
const (
	VmRead        VmFlags = 1 << iota // rd
	VmWrite                           // wr
	VmExec                            // ex
	VmShared                          // sh
	VmMayRead                         // mr
	VmMayWrite                        // mw
	VmMayExec                         // me
	VmMayShare                        // ms
	VmGrowsDown                       // gd
	VmPFNMap                          // pf
	VmDenyWrite                       // dw (gone since 5.x)
	VmLocked                          // lo
	VmIO                              // io
	VmSeqRead                         // sr
	VmRandRead                        // rr
	VmDontCopy                        // dc
	VmDontExpand                      // de
	VmLockOnFault                     // lf
	VmAccount                         // ac
	VmNoReserve                       // nr
	VmHugeTLB                         // ht
	VmSync                            // sf
	VmNonLinear                       // nl (gone since 4.0)
	VmArch1                           // ar
	VmWipeOnFork                      // wf
	VmDontDump                        // dd
	VmBTI                             // bt (arm64)
	VmMTE                             // mt (arm64)
	VmSoftDirty                       // sd
	VmMixedMap                        // mm
	VmHugePage                        // hg
	VmNoHugePage                      // nh
	VmMergeable                       // mg
	VmUffdMissing                     // um
	VmUffdWP                          // uw
	VmUffdMinor                       // ui
	VmShadowStack                     // ss
	VmSealed                          // sl
	VmDroppable                       // dp (MAP_DROPPABLE, 6.11)
)

var vmFlagNames = map[string]VmFlags{
	"rd": VmRead, "wr": VmWrite, "ex": VmExec, "sh": VmShared,
	"mr": VmMayRead, "mw": VmMayWrite, "me": VmMayExec, "ms": VmMayShare,
	"gd": VmGrowsDown, "pf": VmPFNMap, "dw": VmDenyWrite, "lo": VmLocked,
	"io": VmIO, "sr": VmSeqRead, "rr": VmRandRead, "dc": VmDontCopy,
	"de": VmDontExpand, "lf": VmLockOnFault, "ac": VmAccount, "nr": VmNoReserve,
	"ht": VmHugeTLB, "sf": VmSync, "nl": VmNonLinear, "ar": VmArch1,
	"wf": VmWipeOnFork, "dd": VmDontDump, "bt": VmBTI, "mt": VmMTE,
	"sd": VmSoftDirty, "mm": VmMixedMap, "hg": VmHugePage, "nh": VmNoHugePage,
	"mg": VmMergeable, "um": VmUffdMissing, "uw": VmUffdWP, "ui": VmUffdMinor,
	"ss": VmShadowStack, "sl": VmSealed, "dp": VmDroppable,
}

// vmFlagOrder lists the mnemonics in bit order for String.
var vmFlagOrder = []string{
	"rd", "wr", "ex", "sh", "mr", "mw", "me", "ms", "gd", "pf", "dw", "lo",
	"io", "sr", "rr", "dc", "de", "lf", "ac", "nr", "ht", "sf", "nl", "ar",
	"wf", "dd", "bt", "mt", "sd", "mm", "hg", "nh", "mg", "um", "uw", "ui",
	"ss", "sl", "dp",
}

// ParseVmFlags parses the value of a VmFlags line ("rd wr mr mw me ac sd").
func ParseVmFlags(s string) VmFlags {
	f, _ := ParseVmFlagsUnknown(s)
	return f
}

// ParseVmFlagsUnknown parses a VmFlags value as ParseVmFlags does, and
// also returns the mnemonics it does not know, space-separated ("" when
// it knows them all).
func ParseVmFlagsUnknown(s string) (VmFlags, string) {
	var f VmFlags
	var unknown []string
	for _, m := range strings.Fields(s) {
		if b, ok := vmFlagNames[m]; ok {
			f |= b
		} else {
			unknown = append(unknown, m)
		}
	}
	return f, strings.Join(unknown, " ")
}

// Has reports whether every flag in want is set.
func (f VmFlags) Has(want VmFlags) bool { return f&want == want }

// String renders the set the way smaps prints it.
func (f VmFlags) String() string {
	var names []string
	for i, m := range vmFlagOrder {
		if m != "" && f&(1<<i) != 0 {
			names = append(names, m)
		}
	}
	return strings.Join(names, " ")
}
