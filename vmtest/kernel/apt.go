package kernel

import (
	"path/filepath"

	"github.com/gocr/gocr/internal/debapt"
)

// Keyring signs every suite vmtest reads; it comes with Debian's
// debian-archive-keyring package.
const Keyring = debapt.Keyring

// Suite is one Debian suite, e.g. {"http://deb.debian.org/debian", "bookworm"}.
type Suite = debapt.Suite

// newApt is the private apt configuration of suite s in the kernel cache
// (see internal/debapt): the system's apt sources and state are never
// read nor changed.
func newApt(cacheDir string, s Suite, log func(string, ...any)) (*debapt.Apt, error) {
	return debapt.New(filepath.Join(cacheDir, "apt", s.Name), s, false, log)
}

func parseControl(s string) map[string]string { return debapt.ParseControl(s) }
func depends(field string) []string           { return debapt.Depends(field) }
