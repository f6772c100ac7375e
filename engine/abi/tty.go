package abi

// Termios is the kernel's struct termios as TCGETS and TCSETS pass it on
// x86_64 (include/uapi/asm-generic/termbits.h): no speeds, which live in
// c_cflag; 36 bytes. x/sys's unix.Termios is struct termios2 (44 bytes,
// with c_ispeed and c_ospeed), which TCGETS fills only in part.
type Termios struct {
	Iflag, Oflag, Cflag, Lflag uint32
	Line                       uint8
	Cc                         [NCCS]uint8
}

// NCCS is the number of control characters in Termios.Cc.
const NCCS = 19

// Winsize is struct winsize of TIOCGWINSZ and TIOCSWINSZ.
type Winsize struct {
	Row, Col, Xpixel, Ypixel uint16
}

// Device numbers of Unix98 pseudo-terminals (include/uapi/linux/major.h):
// every master is opened through a ptmx node, c 5:2, and slave N is
// c 136:N (minors are 20 bits wide, so one major holds every index).
const (
	TtyAuxMajor   = 5
	DevTtyMinor   = 0 // /dev/tty: the opener's controlling terminal
	PtmxMinor     = 2
	PtySlaveMajor = 136
)
