package kernel

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"os/exec"
)

// ExtractVmlinux returns the uncompressed ELF kernel inside a bzImage, so
// QEMU can boot it directly (through its PVH entry point) and the guest
// spends no time decompressing itself, which under TCG costs seconds.
//
// The boot protocol header tells where the compressed payload is
// (payload_offset at 0x248, payload_length at 0x24c, both relative to the
// protected-mode code that starts after the setup sectors).
func ExtractVmlinux(bz []byte) ([]byte, error) {
	if len(bz) < 0x250 || string(bz[0x202:0x206]) != "HdrS" {
		return nil, fmt.Errorf("not a bzImage (no HdrS boot header)")
	}
	if v := binary.LittleEndian.Uint16(bz[0x206:]); v < 0x208 {
		return nil, fmt.Errorf("boot protocol %#x predates payload_offset (2.08)", v)
	}
	setup := int(bz[0x1f1])
	if setup == 0 {
		setup = 4
	}
	start := (setup + 1) * 512
	off := start + int(binary.LittleEndian.Uint32(bz[0x248:]))
	n := int(binary.LittleEndian.Uint32(bz[0x24c:]))
	if off+n > len(bz) || n < 8 {
		return nil, fmt.Errorf("bzImage payload %d+%d beyond its %d bytes", off, n, len(bz))
	}
	payload := bz[off : off+n]
	var out []byte
	var err error
	switch {
	case bytes.HasPrefix(payload, []byte{0x1f, 0x8b}):
		var zr *gzip.Reader
		if zr, err = gzip.NewReader(bytes.NewReader(payload)); err == nil {
			zr.Multistream(false)
			out, err = io.ReadAll(zr)
		}
	case bytes.HasPrefix(payload, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		// The kernel appends the uncompressed size (4 bytes) after the
		// stream; --single-stream stops before it.
		out, err = filter(payload, "xz", "-dc", "--single-stream")
	case bytes.HasPrefix(payload, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		out, err = filter(payload[:n-4], "zstd", "-dcq")
	default:
		return nil, fmt.Errorf("bzImage payload compressed with an unknown method (magic % x)", payload[:4])
	}
	if err != nil {
		return nil, fmt.Errorf("decompress bzImage payload: %w", err)
	}
	f, err := elf.NewFile(bytes.NewReader(out))
	if err != nil {
		return nil, fmt.Errorf("bzImage payload is not an ELF kernel: %w", err)
	}
	f.Close()
	return out, nil
}

func filter(in []byte, name string, args ...string) ([]byte, error) {
	if _, err := exec.LookPath(name); err != nil {
		pkg := name
		if name == "xz" {
			pkg = "xz-utils"
		}
		return nil, fmt.Errorf("%s is needed to unpack this kernel (apt-get install %s): %w", name, pkg, err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(in)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %v: %s", name, err, bytes.TrimSpace(errb.Bytes()))
	}
	return out.Bytes(), nil
}

// hasPVHNote reports whether an ELF kernel carries the Xen PVH entry note
// (XEN_ELFNOTE_PHYS32_ENTRY) that QEMU needs to boot it with -kernel.
func hasPVHNote(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		b, err := io.ReadAll(p.Open())
		if err != nil {
			continue
		}
		for len(b) >= 12 {
			nsz := int(binary.LittleEndian.Uint32(b))
			dsz := int(binary.LittleEndian.Uint32(b[4:]))
			typ := binary.LittleEndian.Uint32(b[8:])
			name := b[12:min(len(b), 12+nsz)]
			if typ == 18 && bytes.HasPrefix(name, []byte("Xen")) {
				return true
			}
			step := 12 + (nsz+3)&^3 + (dsz+3)&^3
			if step > len(b) {
				break
			}
			b = b[step:]
		}
	}
	return false
}
