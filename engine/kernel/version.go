package kernel

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Version is a kernel version, major.minor.patch.
type Version struct {
	Major, Minor, Patch int
}

func (v Version) String() string {
	return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
}

// AtLeast reports whether v >= o.
func (v Version) AtLeast(o Version) bool {
	if v.Major != o.Major {
		return v.Major > o.Major
	}
	if v.Minor != o.Minor {
		return v.Minor > o.Minor
	}
	return v.Patch >= o.Patch
}

// ParseRelease extracts the version from a uname release string such as
// "6.18.44-fc-v782", "5.10.0-28-amd64" or "6.1": the leading dotted numbers,
// with a missing patch level read as 0.
func ParseRelease(release string) (Version, error) {
	var nums [3]int
	rest := release
	i := 0
	for ; i < 3; i++ {
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		if j == 0 {
			break
		}
		n, err := strconv.Atoi(rest[:j])
		if err != nil {
			return Version{}, fmt.Errorf("kernel release %q: %w", release, err)
		}
		nums[i] = n
		rest = rest[j:]
		if !strings.HasPrefix(rest, ".") {
			i++
			break
		}
		rest = rest[1:]
	}
	if i < 2 {
		return Version{}, fmt.Errorf("kernel release %q: no major.minor version", release)
	}
	return Version{nums[0], nums[1], nums[2]}, nil
}

// Running returns the release string of the running kernel and its version.
func Running() (string, Version, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", Version{}, fmt.Errorf("uname: %w", err)
	}
	rel := unix.ByteSliceToString(u.Release[:])
	v, err := ParseRelease(rel)
	return rel, v, err
}
