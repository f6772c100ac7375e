// Package image reads and writes gocr's image directory in CRIU's own image
// format, so that crit, checkpointctl and CRIU can read what gocr dumps and
// gocr can read what they produce. Messages are go-criu's generated protobuf
// types; magic numbers come from go-criu's magic package.
//
// # Files
//
// An image file is a header followed by entries. The header is the image's
// magic, preceded by IMG_COMMON (or IMG_SERVICE for stats and irmap-cache)
// for every image except inventory.img, which carries its own magic only.
// An entry is a 4-byte little-endian length and a protobuf message; a few
// messages (pipe data, socket queues, tcp streams, ghost files, bpf maps,
// SysV IPC) are followed by raw bytes whose length the message states.
// pages-<n>.img holds raw page contents with no header at all.
//
// # The directory
//
// Create makes a fresh directory (0700) or adopts an existing one that holds
// no images yet: logs, a parent link or other foreign files are left alone,
// but an image file, or the partial file of an interrupted write, makes
// Create fail, so two dumps can never be mixed in one directory. Each file is
// written as name.part (0600) and renamed into place on Close, so a reader
// sees a file either complete or not at all.
//
// Open refuses a directory owned by neither the caller nor root. A
// directory group or others may write to is accepted (zdtm.py makes its
// images directories 0777), because the files are what drive restore,
// which runs as root: each is opened once, through an os.Root (openat on
// the directory's fd, so no name, link or "..", however crafted, reaches
// outside the directory) with O_NOFOLLOW, and the file opened is refused
// unless it is a regular file owned by the caller or root that neither
// group nor others may write to. Another user who can write the directory
// can then delete or rename images, making restore fail, but cannot make
// it read a file of theirs.
//
// Reading never trusts a size: every declared length is checked against the
// configured Limits and against what is left of the file before any buffer
// is allocated, and every error names the file, the entry and the field.
package image
