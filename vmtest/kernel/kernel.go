// Package kernel fetches Debian's distribution kernels for vmtest: it
// resolves the newest build of a kernel line in Debian's archive through
// a private apt configuration, downloads and unpacks the package, extracts
// an uncompressed vmlinux for fast boots under TCG, resolves the modules
// the guest needs, and caches all of it so a second run downloads nothing.
package kernel

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gocr/gocr/internal/debapt"
)

const (
	debian         = "http://deb.debian.org/debian"
	debianSecurity = "http://deb.debian.org/debian-security"
)

// Line is a kernel line of the matrix and the suites that carry it, in
// order of preference: the first suite whose linux-image-amd64 points at
// the line gives the kernel.
type Line struct {
	Name   string
	Suites []Suite
}

// Lines is the matrix. To add a kernel, add a line here (see README,
// "vmtest: the suite on real kernels").
var Lines = []Line{
	{"5.10", []Suite{{Mirror: debianSecurity, Name: "bullseye-security"}, {Mirror: debian, Name: "bullseye"}}},
	{"6.1", []Suite{{Mirror: debian, Name: "bookworm"}}},
	{"6.12", []Suite{{Mirror: debian, Name: "trixie"}, {Mirror: debian, Name: "bookworm-backports"}}},
	{"7.2", []Suite{{Mirror: debian, Name: "sid"}}},
}

// LineNames lists the names of Lines.
func LineNames() []string {
	var n []string
	for _, l := range Lines {
		n = append(n, l.Name)
	}
	return n
}

// FindLine returns the line called name.
func FindLine(name string) (Line, error) {
	for _, l := range Lines {
		if l.Name == name {
			return l, nil
		}
	}
	return Line{}, fmt.Errorf("no kernel line %q in the matrix (have %s)", name, strings.Join(LineNames(), ", "))
}

// Kernel is a fetched, unpacked kernel.
type Kernel struct {
	Line       string
	Suite      string
	Packages   []string // the packages unpacked, name=version
	Version    string   // Debian package version, e.g. 6.1.162-1
	ABI        string   // the release, uname -r: 6.1.0-44-amd64
	Dir        string   // its cache directory
	Image      string   // what QEMU boots: vmlinux, or the bzImage when it has no PVH entry
	BzImage    string
	Config     string // the kernel's .config
	ModulesDir string // lib/modules/ABI of the unpacked packages
	// ModulesPackage is the package holding the modules when the kernel
	// package does not (sid splits them out), fetched only when needed.
	ModulesPackage string
	Cached         bool `json:"-"` // found in the cache: nothing was downloaded
}

// Options of Fetch.
type Options struct {
	// CacheDir holds everything: $KCACHE, else $XDG_CACHE_HOME/gocr/kernels,
	// else ~/.cache/gocr/kernels (see DefaultCacheDir).
	CacheDir string
	// MaxListAge: package lists younger than this are used without asking
	// the archive again. Zero means always refresh.
	MaxListAge time.Duration
	// Modules the guest needs (with their dependencies) unless built in.
	Modules []string
	// Optional modules are fetched too when the kernel has them, but a
	// kernel without them (or an archive that cannot be reached for a
	// cached kernel) is no error.
	Optional []string
	Log      func(format string, args ...any)
}

// DefaultCacheDir is $KCACHE, else $XDG_CACHE_HOME/gocr/kernels, else
// $HOME/.cache/gocr/kernels.
func DefaultCacheDir() string {
	if d := os.Getenv("KCACHE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "gocr", "kernels")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "gocr", "kernels")
}

// Fetch resolves the newest kernel of the line and returns it unpacked,
// from the cache when it is there.
func Fetch(ctx context.Context, lineName string, o Options) (*Kernel, error) {
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	line, err := FindLine(lineName)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(Keyring); err != nil {
		return nil, fmt.Errorf("kernel %s: Debian's archive keyring is needed (apt-get install debian-archive-keyring): %w", line.Name, err)
	}
	var tried []string
	for _, s := range line.Suites {
		a, err := newApt(o.CacheDir, s, o.Log)
		if err != nil {
			return nil, err
		}
		if err := a.Update(ctx, o.MaxListAge); err != nil {
			if a.ListsAge() < 1<<62 {
				o.Log("warning: %v; using the package lists from %v ago", err, a.ListsAge().Round(time.Minute))
			} else if k := newestCached(o.CacheDir, line.Name); k != nil {
				o.Log("warning: %v; using the cached kernel %s", err, k.ABI)
				return k, nil
			} else {
				return nil, fmt.Errorf("kernel %s: %w", line.Name, err)
			}
		}
		abi, err := resolveABI(ctx, a)
		if err != nil {
			return nil, fmt.Errorf("kernel %s: %w", line.Name, err)
		}
		if !strings.HasPrefix(abi, line.Name+".") && !strings.HasPrefix(abi, line.Name+"-") {
			tried = append(tried, fmt.Sprintf("%s has %s", s.Name, abi))
			continue
		}
		return fetchABI(ctx, a, line.Name, abi, o)
	}
	return nil, fmt.Errorf("kernel %s: no suite carries it any more (%s): update kernel.Lines", line.Name, strings.Join(tried, ", "))
}

// resolveABI follows the suite's linux-image-amd64 metapackage to the
// release it currently stands for, e.g. 6.1.0-44-amd64.
func resolveABI(ctx context.Context, a *debapt.Apt) (string, error) {
	meta, err := a.Show(ctx, "linux-image-amd64")
	if err != nil {
		return "", err
	}
	if meta == nil {
		return "", fmt.Errorf("suite %s has no linux-image-amd64", a.Suite.Name)
	}
	for _, d := range depends(meta["Depends"]) {
		if abi, ok := strings.CutPrefix(d, "linux-image-"); ok && strings.HasSuffix(abi, "-amd64") && abi != "amd64" {
			return abi, nil
		}
	}
	return "", fmt.Errorf("suite %s: linux-image-amd64 %s depends on no kernel image (%s)", a.Suite.Name, meta["Version"], meta["Depends"])
}

func fetchABI(ctx context.Context, a *debapt.Apt, line, abi string, o Options) (*Kernel, error) {
	img, err := a.Show(ctx, "linux-image-"+abi)
	if err != nil || img == nil {
		return nil, fmt.Errorf("kernel %s: linux-image-%s: %v", line, abi, err)
	}
	version := img["Version"]
	dir := filepath.Join(o.CacheDir, line, abi+"_"+strings.ReplaceAll(version, ":", "%3a"))
	if k, err := loadKernel(dir); err == nil {
		k.Cached = true
		o.Log("kernel %s: %s %s from %s (cached in %s)", line, abi, version, a.Suite.Name, dir)
		// A kernel cached before a module was wanted: fetch its
		// modules package now.
		fetched, err := k.fetchModules(ctx, a, o)
		if err != nil {
			return nil, err
		}
		if fetched {
			k.Cached = false
			if err := k.save(); err != nil {
				return nil, err
			}
		}
		return k, nil
	}
	o.Log("kernel %s: %s %s from %s: fetching", line, abi, version, a.Suite.Name)
	// Newer suites split the image: the kernel in linux-binary-ABI, the
	// config and modules.builtin in linux-base-ABI, the modules in
	// linux-modules-ABI (fetched only if a needed module is not built in).
	pkgs := []string{"linux-image-" + abi}
	modPkg := ""
	if deps := depends(img["Depends"]); slices.Contains(deps, "linux-binary-"+abi) {
		pkgs = []string{"linux-binary-" + abi}
		if slices.Contains(deps, "linux-base-"+abi) {
			pkgs = append(pkgs, "linux-base-"+abi)
		}
		if slices.Contains(deps, "linux-modules-"+abi) {
			modPkg = "linux-modules-" + abi
		}
	}
	os.RemoveAll(dir)
	k := &Kernel{Line: line, Suite: a.Suite.Name, Version: version, ABI: abi, Dir: dir, ModulesPackage: modPkg}
	root := filepath.Join(dir, "root")
	for _, p := range pkgs {
		if err := k.unpack(ctx, a, p, version); err != nil {
			return nil, err
		}
	}
	for _, pat := range []string{"boot/vmlinuz-" + abi, "usr/lib/modules/" + abi + "/vmlinuz", "lib/modules/" + abi + "/vmlinuz"} {
		if _, err := os.Stat(filepath.Join(root, pat)); err == nil {
			k.BzImage = filepath.Join(root, pat)
		}
	}
	for _, pat := range []string{"lib/modules/" + abi, "usr/lib/modules/" + abi} {
		if _, err := os.Stat(filepath.Join(root, pat, "modules.builtin")); err == nil {
			k.ModulesDir = filepath.Join(root, pat)
		}
	}
	for _, pat := range []string{"boot/config-" + abi, "usr/lib/modules/" + abi + "/config", "lib/modules/" + abi + "/config"} {
		if _, err := os.Stat(filepath.Join(root, pat)); err == nil {
			k.Config = filepath.Join(root, pat)
		}
	}
	if k.BzImage == "" || k.ModulesDir == "" {
		return nil, fmt.Errorf("kernel %s: %v unpacked but hold no vmlinuz (%q) or modules.builtin (%q)", line, pkgs, k.BzImage, k.ModulesDir)
	}
	// Fetch the modules package now if the guest needs a module that is
	// not built in, so that a later run needs no network.
	if _, err := k.fetchModules(ctx, a, o); err != nil {
		return nil, err
	}
	if _, err := k.ResolveModules(o.Modules); err != nil {
		return nil, fmt.Errorf("kernel %s: %w", line, err)
	}
	bz, err := os.ReadFile(k.BzImage)
	if err != nil {
		return nil, err
	}
	t := time.Now()
	vmlinux, err := ExtractVmlinux(bz)
	k.Image = k.BzImage
	switch {
	case err != nil:
		o.Log("kernel %s: no vmlinux (%v): booting the bzImage", line, err)
	default:
		p := filepath.Join(dir, "vmlinux")
		if err := os.WriteFile(p, vmlinux, 0o644); err != nil {
			return nil, err
		}
		if hasPVHNote(p) {
			k.Image = p
			o.Log("kernel %s: extracted vmlinux (%d MiB, %v)", line, len(vmlinux)>>20, time.Since(t).Round(time.Millisecond))
		} else {
			o.Log("kernel %s: vmlinux has no PVH entry point: booting the bzImage", line)
		}
	}
	if err := k.save(); err != nil {
		return nil, err
	}
	return k, nil
}

// save writes kernel.json, which marks the cache directory complete.
func (k *Kernel) save() error {
	b, _ := json.MarshalIndent(k, "", "  ")
	return os.WriteFile(filepath.Join(k.Dir, "kernel.json"), b, 0o644)
}

// fetchModules unpacks the modules package when a wanted module is neither
// built in nor unpacked. Failing to get it is an error only when a needed
// module (not an optional one) is missing.
func (k *Kernel) fetchModules(ctx context.Context, a *debapt.Apt, o Options) (fetched bool, err error) {
	if !k.needsModulesPackage(slices.Concat(o.Modules, o.Optional)) {
		return false, nil
	}
	switch err := k.unpack(ctx, a, k.ModulesPackage, k.Version); {
	case err == nil:
		return true, nil
	case k.needsModulesPackage(o.Modules):
		return false, err
	default:
		o.Log("warning: %v: optional modules %v are not loaded", err, o.Optional)
		return false, nil
	}
}

// needsModulesPackage says whether the modules package, split out of the
// kernel's and not unpacked yet, is needed for a module of names that is
// neither built in nor unpacked.
func (k *Kernel) needsModulesPackage(names []string) bool {
	if k.ModulesPackage == "" || slices.ContainsFunc(k.Packages, func(p string) bool { return strings.HasPrefix(p, k.ModulesPackage+"=") }) {
		return false
	}
	ix, err := indexModules(k.ModulesDir)
	return err == nil && len(ix.missing(names)) > 0
}

// unpack downloads pkg and unpacks it into the kernel's root; the .deb is
// not kept.
func (k *Kernel) unpack(ctx context.Context, a *debapt.Apt, pkg, version string) error {
	tmp := filepath.Join(k.Dir, "debs")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	deb, err := a.Download(ctx, tmp, pkg, version)
	if err != nil {
		return fmt.Errorf("kernel %s: %w", k.Line, err)
	}
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", deb, filepath.Join(k.Dir, "root")).CombinedOutput(); err != nil {
		return fmt.Errorf("kernel %s: dpkg-deb -x %s: %v\n%s", k.Line, filepath.Base(deb), err, out)
	}
	k.Packages = append(k.Packages, pkg+"="+version)
	return nil
}

// ResolveModules returns the module files to load for names, in load
// order; built-in modules are left out.
func (k *Kernel) ResolveModules(names []string) ([]string, error) {
	if k.ModulesDir == "" {
		return nil, nil // a kernel of one's own (Local): everything built in
	}
	ix, err := indexModules(k.ModulesDir)
	if err != nil {
		return nil, err
	}
	return ix.resolve(names)
}

// Local is a kernel image of one's own, not Debian's: the guest's
// modules (virtio-serial and the console) must be built into it, or be
// under modulesDir (lib/modules/RELEASE, with modules.builtin).
func Local(image, modulesDir string) (*Kernel, error) {
	abs, err := filepath.Abs(image)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("kernel image: %w", err)
	}
	return &Kernel{Line: "local", ABI: filepath.Base(abs), Image: abs, Dir: filepath.Dir(abs), ModulesDir: modulesDir, Cached: true}, nil
}

func loadKernel(dir string) (*Kernel, error) {
	b, err := os.ReadFile(filepath.Join(dir, "kernel.json"))
	if err != nil {
		return nil, err
	}
	var k Kernel
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, err
	}
	if _, err := os.Stat(k.Image); err != nil {
		return nil, err
	}
	return &k, nil
}

// newestCached returns the most recently fetched kernel of a line in the
// cache, for runs without network.
func newestCached(cacheDir, line string) *Kernel {
	m, _ := filepath.Glob(filepath.Join(cacheDir, line, "*", "kernel.json"))
	sort.Slice(m, func(i, j int) bool {
		a, _ := os.Stat(m[i])
		b, _ := os.Stat(m[j])
		return a != nil && b != nil && a.ModTime().After(b.ModTime())
	})
	for _, f := range m {
		if k, err := loadKernel(filepath.Dir(f)); err == nil {
			k.Cached = true
			return k
		}
	}
	return nil
}
