package kernel

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Debian ships no modules.dep (depmod makes it at install time), so
// vmtest resolves dependencies itself from each module's .modinfo section
// ("depends=virtio,virtio_ring").

// moduleName normalizes a module file or name: virtio-rng.ko.xz → virtio_rng.
func moduleName(file string) string {
	n := filepath.Base(file)
	if i := strings.Index(n, ".ko"); i >= 0 {
		n = n[:i]
	}
	return strings.ReplaceAll(n, "-", "_")
}

// moduleIndex maps module names to files under a modules directory and
// knows which modules are built into the kernel.
type moduleIndex struct {
	files   map[string]string
	builtin map[string]bool
}

func indexModules(dir string) (*moduleIndex, error) {
	ix := &moduleIndex{files: map[string]string{}, builtin: map[string]bool{}}
	b, err := os.ReadFile(filepath.Join(dir, "modules.builtin"))
	if err != nil {
		return nil, fmt.Errorf("modules.builtin: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			ix.builtin[moduleName(l)] = true
		}
	}
	err = filepath.WalkDir(filepath.Join(dir, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if os.IsNotExist(err) {
			return filepath.SkipDir
		}
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.Contains(d.Name(), ".ko") {
			ix.files[moduleName(p)] = p
		}
		return nil
	})
	return ix, err
}

// resolve returns the module files to load for names, dependencies
// first; built-in modules are left out.
func (ix *moduleIndex) resolve(names []string) ([]string, error) {
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name, from string) error
	visit = func(name, from string) error {
		name = moduleName(name)
		switch {
		case state[name] == 2 || ix.builtin[name]:
			return nil
		case state[name] == 1:
			return fmt.Errorf("module dependency cycle at %s", name)
		}
		file, ok := ix.files[name]
		if !ok {
			if from != "" {
				return fmt.Errorf("module %s (needed by %s) is neither built in nor shipped", name, from)
			}
			return fmt.Errorf("module %s is neither built in nor shipped", name)
		}
		state[name] = 1
		deps, err := moduleDepends(file)
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d, name); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, file)
		return nil
	}
	for _, n := range names {
		if err := visit(n, ""); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// missing lists the names that are neither built in nor shipped.
func (ix *moduleIndex) missing(names []string) []string {
	var out []string
	for _, n := range names {
		n = moduleName(n)
		if !ix.builtin[n] && ix.files[n] == "" {
			out = append(out, n)
		}
	}
	return out
}

// moduleDepends reads depends= from a module's .modinfo section.
func moduleDepends(file string) ([]string, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	switch {
	case strings.HasSuffix(file, ".xz"):
		raw, err = filter(raw, "xz", "-dc")
	case strings.HasSuffix(file, ".zst"):
		raw, err = filter(raw, "zstd", "-dcq")
	}
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", file, err)
	}
	return parseModinfoDepends(raw)
}

func parseModinfoDepends(ko []byte) ([]string, error) {
	f, err := elf.NewFile(bytes.NewReader(ko))
	if err != nil {
		return nil, fmt.Errorf("module is not ELF: %w", err)
	}
	defer f.Close()
	s := f.Section(".modinfo")
	if s == nil {
		return nil, fmt.Errorf("module has no .modinfo")
	}
	b, err := s.Data()
	if err != nil {
		return nil, err
	}
	for _, kv := range bytes.Split(b, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			var out []string
			for _, d := range strings.Split(string(v), ",") {
				if d = strings.TrimSpace(d); d != "" {
					out = append(out, d)
				}
			}
			return out, nil
		}
	}
	return nil, nil
}
