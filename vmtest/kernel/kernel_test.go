package kernel

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

func TestParseControl(t *testing.T) {
	f := parseControl("Package: linux-image-amd64\nVersion: 6.1.176-1\nDepends: linux-image-6.1.0-50-amd64 (= 6.1.176-1)\nDescription: Linux\n more text\n\nPackage: other\n")
	if f["Version"] != "6.1.176-1" || f["Package"] != "linux-image-amd64" {
		t.Fatalf("fields %v", f)
	}
	if got := depends(f["Depends"]); !slices.Equal(got, []string{"linux-image-6.1.0-50-amd64"}) {
		t.Fatalf("depends %v", got)
	}
	d := depends("dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, linux-binary-7.2.13+deb14-amd64 (= 7.2.13-1)")
	if !slices.Contains(d, "linux-binary-7.2.13+deb14-amd64") || !slices.Contains(d, "initramfs-tools") {
		t.Fatalf("depends with alternatives: %v", d)
	}
}

func TestModuleName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/drivers/char/virtio_console.ko":          "virtio_console",
		"kernel/drivers/char/hw_random/virtio-rng.ko.xz": "virtio_rng",
		"virtio_pci": "virtio_pci",
	} {
		if got := moduleName(in); got != want {
			t.Errorf("moduleName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestResolve builds a fake module tree with real ELF .modinfo sections
// (assembled with the host's toolchain when there is one).
func TestResolve(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc missing: cannot make test modules")
	}
	dir := t.TempDir()
	mk := func(name, deps string) {
		src := filepath.Join(dir, name+".c")
		os.WriteFile(src, []byte(`__attribute__((section(".modinfo"))) const char mi[] = "license=GPL\0depends=`+deps+`\0name=`+name+`";`), 0o644)
		out := filepath.Join(dir, "kernel", name+".ko")
		os.MkdirAll(filepath.Dir(out), 0o755)
		if b, err := exec.Command("gcc", "-c", "-o", out, src).CombinedOutput(); err != nil {
			t.Fatalf("gcc: %v %s", err, b)
		}
	}
	mk("virtio_console", "virtio,virtio_ring")
	mk("virtio_ring", "virtio")
	mk("virtio", "")
	os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte("kernel/drivers/virtio/virtio_pci.ko\n"), 0o644)
	ix, err := indexModules(dir)
	if err != nil {
		t.Fatal(err)
	}
	order, err := ix.resolve([]string{"virtio_console", "virtio_pci"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range order {
		names = append(names, moduleName(o))
	}
	if want := []string{"virtio", "virtio_ring", "virtio_console"}; !slices.Equal(names, want) {
		t.Fatalf("load order %v, want %v", names, want)
	}
	if _, err := ix.resolve([]string{"9p"}); err == nil {
		t.Fatal("resolving a module that is not there succeeded")
	}
}

func TestExtractVmlinuxGzip(t *testing.T) {
	elfKernel, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Skip(err)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(elfKernel)
	zw.Close()
	// A minimal bzImage: 1 setup sector after the boot sector, then the
	// protected-mode part holding the payload at offset 0x40.
	bz := make([]byte, 2*512+0x40)
	bz[0x1f1] = 1
	copy(bz[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(bz[0x206:], 0x20f)
	binary.LittleEndian.PutUint32(bz[0x248:], 0x40)
	binary.LittleEndian.PutUint32(bz[0x24c:], uint32(z.Len()))
	bz = append(bz, z.Bytes()...)
	got, err := ExtractVmlinux(bz)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, elfKernel) {
		t.Fatalf("extracted %d bytes, want %d", len(got), len(elfKernel))
	}
	if _, err := ExtractVmlinux(make([]byte, 4096)); err == nil {
		t.Fatal("a file without a boot header was taken for a bzImage")
	}
}
