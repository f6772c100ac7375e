// Package netif reads and sets the flags of a network device (up, down) in
// the calling thread's network namespace, with the SIOCGIFFLAGS and
// SIOCSIFFLAGS ioctls. The engine, the workload library and the VM init
// all need it.
package netif

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Flags returns the IFF_* flags of the device.
func Flags(name string) (uint16, error) {
	var flags uint16
	err := withIfreq(name, func(fd int, ifr *unix.Ifreq) error {
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
			return fmt.Errorf("flags of %s: %w", name, err)
		}
		flags = ifr.Uint16()
		return nil
	})
	return flags, err
}

// SetFlags sets the administrative flags of the device; the kernel ignores
// the read-only ones (running, lower_up).
func SetFlags(name string, flags uint16) error {
	return withIfreq(name, func(fd int, ifr *unix.Ifreq) error {
		ifr.SetUint16(flags)
		if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
			return fmt.Errorf("set flags %#x on %s: %w", flags, name, err)
		}
		return nil
	})
}

// Up brings the device up, keeping its other flags.
func Up(name string) error {
	flags, err := Flags(name)
	if err != nil {
		return err
	}
	return SetFlags(name, flags|unix.IFF_UP)
}

func withIfreq(name string, fn func(fd int, ifr *unix.Ifreq) error) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket for %s: %w", name, err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	return fn(fd, ifr)
}
