package mount

import (
	"strings"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/mnt"
	"golang.org/x/sys/unix"
)

// Per-mount options as mountinfo prints them (field 6) and the MS_* flag
// each stands for. "rw" is the absence of MS_RDONLY; a mount showing none
// of the atime options is strictatime.
var mountFlagNames = []struct {
	name string
	flag uint32
}{
	{"ro", unix.MS_RDONLY},
	{"nosuid", unix.MS_NOSUID},
	{"nodev", unix.MS_NODEV},
	{"noexec", unix.MS_NOEXEC},
	{"noatime", unix.MS_NOATIME},
	{"nodiratime", unix.MS_NODIRATIME},
	{"relatime", unix.MS_RELATIME},
	{"nosymfollow", unix.MS_NOSYMFOLLOW},
}

// Superblock options that are flags rather than filesystem options; the
// kernel prints them first in the super options (field 11).
var sbFlagNames = []struct {
	name string
	flag uint32
}{
	{"ro", unix.MS_RDONLY},
	{"sync", unix.MS_SYNCHRONOUS},
	{"dirsync", unix.MS_DIRSYNC},
	{"mand", unix.MS_MANDLOCK},
	{"lazytime", unix.MS_LAZYTIME},
}

// mountFlags decodes per-mount options. Unknown words (a newer kernel's)
// are ignored: they cannot be set back either.
func mountFlags(opts string) uint32 {
	var f uint32
	for _, o := range strings.Split(opts, ",") {
		for _, n := range mountFlagNames {
			if o == n.name {
				f |= n.flag
			}
		}
	}
	return f
}

// superFlags splits superblock options into MS_* flags and the options
// proper (what CRIU keeps in MntEntry.options), dropping "rw".
func superFlags(opts string) (uint32, string) {
	var f uint32
	var rest []string
	for _, o := range strings.Split(opts, ",") {
		if o == "" || o == "rw" {
			continue
		}
		known := false
		for _, n := range sbFlagNames {
			if o == n.name {
				f |= n.flag
				known = true
			}
		}
		if !known {
			rest = append(rest, o)
		}
	}
	return f, strings.Join(rest, ",")
}

// flagString renders per-mount flags the way mountinfo prints them, for
// messages and tests.
func flagString(f uint32) string {
	out := []string{"rw"}
	if f&unix.MS_RDONLY != 0 {
		out[0] = "ro"
	}
	for _, n := range mountFlagNames[1:] {
		if f&n.flag != 0 {
			out = append(out, n.name)
		}
	}
	return strings.Join(out, ",")
}

// fstypeCodes maps filesystem type names to CRIU's fstype enum
// (images/mnt.proto). Types missing here are written as UNSUPPORTED with
// the name in fsname.
var fstypeCodes = map[string]mnt.Fstype{
	"proc":        mnt.Fstype_PROC,
	"sysfs":       mnt.Fstype_SYSFS,
	"devtmpfs":    mnt.Fstype_DEVTMPFS,
	"binfmt_misc": mnt.Fstype_BINFMT_MISC,
	"tmpfs":       mnt.Fstype_TMPFS,
	"devpts":      mnt.Fstype_DEVPTS,
	"simfs":       mnt.Fstype_SIMFS,
	"pstore":      mnt.Fstype_PSTORE,
	"securityfs":  mnt.Fstype_SECURITYFS,
	"fusectl":     mnt.Fstype_FUSECTL,
	"debugfs":     mnt.Fstype_DEBUGFS,
	"cgroup":      mnt.Fstype_CGROUP,
	"aufs":        mnt.Fstype_AUFS,
	"mqueue":      mnt.Fstype_MQUEUE,
	"fuse":        mnt.Fstype_FUSE,
	"overlay":     mnt.Fstype_OVERLAYFS,
	"autofs":      mnt.Fstype_AUTOFS,
	"tracefs":     mnt.Fstype_TRACEFS,
	"cgroup2":     mnt.Fstype_CGROUP2,
}

// fstypeName is the kernel's name for an entry's filesystem type.
func fstypeName(e *mnt.MntEntry) string {
	if n := e.GetFsname(); n != "" {
		return n
	}
	code := mnt.Fstype(e.GetFstype())
	for name, c := range fstypeCodes {
		if c == code {
			return name
		}
	}
	return ""
}

// freshTypes are the filesystems gocr recreates as new instances when they
// are not reachable from its own mount namespace. All are virtual: nothing
// on a disk is lost by making a new one, and tmpfs contents are saved.
var freshTypes = map[string]bool{
	"tmpfs":   true,
	"proc":    true,
	"sysfs":   true,
	"devpts":  true,
	"mqueue":  true,
	"cgroup2": true,
}

// kdev encodes a device number the way CRIU stores root_dev and names
// tmpfs images: the kernel-internal layout, 12 bits of major above 20 bits
// of minor.
func kdev(major, minor uint32) uint32 { return major<<20 | minor&0xfffff }
