package ns

import (
	"fmt"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/utsns"
	"golang.org/x/sys/unix"
)

// DumpUTS reads the host and domain name of pid's uts namespace.
func DumpUTS(pid int) (*utsns.UtsnsEntry, error) {
	var u unix.Utsname
	if err := Enter(pid, "uts", func() error { return unix.Uname(&u) }); err != nil {
		return nil, err
	}
	node, domain := unix.ByteSliceToString(u.Nodename[:]), unix.ByteSliceToString(u.Domainname[:])
	return &utsns.UtsnsEntry{Nodename: &node, Domainname: &domain}, nil
}

// RestoreUTS sets them in pid's (fresh) uts namespace.
func RestoreUTS(pid int, e *utsns.UtsnsEntry) error {
	return Enter(pid, "uts", func() error {
		if err := unix.Sethostname([]byte(e.GetNodename())); err != nil {
			return fmt.Errorf("sethostname %q: %w", e.GetNodename(), err)
		}
		if err := unix.Setdomainname([]byte(e.GetDomainname())); err != nil {
			return fmt.Errorf("setdomainname %q: %w", e.GetDomainname(), err)
		}
		return nil
	})
}
