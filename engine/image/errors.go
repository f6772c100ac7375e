package image

import (
	"errors"
	"fmt"
)

// Sentinel causes, so callers and tests can tell kinds of damage apart with
// errors.Is while the message still says where the damage is.
var (
	ErrBadMagic  = errors.New("bad magic")
	ErrTruncated = errors.New("truncated")
	ErrTooLarge  = errors.New("entry too large")
	ErrTrailing  = errors.New("trailing bytes")
	ErrWrongType = errors.New("wrong message type")
	ErrInvalid   = errors.New("invalid value")
)

// Error locates a problem inside an image directory: the file, the entry
// and the field, so a corrupt or hostile image can be fixed or reported
// without a debugger.
type Error struct {
	File  string // base name, e.g. "mm-42.img"
	Entry int    // entry index from 0, or -1 when the problem is not in an entry
	Field string // e.g. "vmas[3].start"; empty when not about one field
	Err   error
}

func (e *Error) Error() string {
	s := e.File
	if e.Entry >= 0 {
		s += fmt.Sprintf(": entry %d", e.Entry)
	}
	if e.Field != "" {
		s += ": field " + e.Field
	}
	return s + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// errorf builds an *Error whose cause wraps kind (one of the sentinels, or
// nil) and says what is wrong in words.
func errorf(file string, entry int, field string, kind error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	var cause error
	if kind != nil {
		cause = fmt.Errorf("%s: %w", msg, kind)
	} else {
		cause = errors.New(msg)
	}
	return &Error{File: file, Entry: entry, Field: field, Err: cause}
}

// fileErr wraps an I/O error from the operating system with the file name.
func fileErr(file string, err error) error {
	return &Error{File: file, Entry: -1, Err: err}
}
