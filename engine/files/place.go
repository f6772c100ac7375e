package files

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/engine/remote"
)

// slot is one fd of a table to restore: its number, which of the files
// opened for the table it refers to, and its close-on-exec flag.
type slot struct {
	fd      int
	file    int
	cloexec bool
}

// fdRange is the fds lo..hi, both included.
type fdRange struct{ lo, hi int }

// placement is how a table lands on its numbers with a handful of injected
// calls instead of a few per fd. The kernel gives received fds the lowest
// free numbers, in order; in a task whose only fd is the passing socket,
// passing the table's files sorted by number, with a filler (one more copy
// of some file) for each number the table skips, puts every file on its
// number at once. Afterwards the fillers go in a close_range per gap, and
// close-on-exec is set by a close_range(CLOSE_RANGE_CLOEXEC) per run.
type placement struct {
	send    []int     // per passed copy: the file, or -1 for a filler
	at      []int     // the number each passed copy lands on
	moved   *slot     // the table fd whose number the socket holds
	movedAt int       // where moved's copy lands, to be dup3'd onto the socket
	closes  []fdRange // fillers, moved's copy and the socket
	cloexec []fdRange // runs of close-on-exec fds, to set when !allCloexec
	ceFds   []int     // the close-on-exec fds themselves
	// allCloexec: every fd of the table is close-on-exec, so all are
	// received so (MSG_CMSG_CLOEXEC) and cloexec is empty.
	allCloexec bool
}

// planPlacement places slots (sorted by number, each number once) in a task
// whose only fd is the passing socket, at sock. When the socket holds a
// number of the table, that fd is received above the table and moved onto
// the socket's number with dup3 at the end, which closes the socket too.
func planPlacement(slots []slot, sock int) placement {
	var p placement
	var shut []int
	k := 0
	for n := 0; k < len(slots); n++ {
		if n == sock {
			if slots[k].fd == n {
				p.moved = &slots[k]
				k++
			}
			continue
		}
		if slots[k].fd == n {
			p.send, p.at = append(p.send, slots[k].file), append(p.at, n)
			k++
			continue
		}
		p.send, p.at = append(p.send, -1), append(p.at, n)
		shut = append(shut, n)
	}
	if p.moved != nil {
		p.movedAt = 0
		if len(slots) > 0 {
			p.movedAt = slots[len(slots)-1].fd + 1
		}
		p.send, p.at = append(p.send, p.moved.file), append(p.at, p.movedAt)
		shut = append(shut, p.movedAt)
	} else {
		shut = append(shut, sock)
	}
	sort.Ints(shut)
	p.closes = runs(slots, shut, func(slot) bool { return true })
	if n := len(p.closes); n > 0 && (len(slots) == 0 || p.closes[n-1].lo > slots[len(slots)-1].fd) {
		// Above the table nothing may stay open.
		p.closes[n-1].hi = math.MaxUint32
	}
	p.allCloexec = true
	var ce []int
	for _, s := range slots {
		if s.cloexec {
			ce = append(ce, s.fd)
		} else {
			p.allCloexec = false
		}
	}
	if !p.allCloexec {
		p.cloexec = runs(slots, ce, func(s slot) bool { return !s.cloexec })
		p.ceFds = ce
	}
	return p
}

// runs groups sorted numbers into ranges; two numbers share a range unless
// a slot for which stop is true lies between them.
func runs(slots []slot, nums []int, stop func(slot) bool) []fdRange {
	var out []fdRange
	for _, n := range nums {
		if len(out) > 0 && !stopBetween(slots, out[len(out)-1].hi, n, stop) {
			out[len(out)-1].hi = n
			continue
		}
		out = append(out, fdRange{n, n})
	}
	return out
}

// stopBetween says whether a slot with stop true has a number in (a, b).
func stopBetween(slots []slot, a, b int, stop func(slot) bool) bool {
	i := sort.Search(len(slots), func(i int) bool { return slots[i].fd > a })
	for ; i < len(slots) && slots[i].fd < b; i++ {
		if stop(slots[i]) {
			return true
		}
	}
	return false
}

// tableSlots sorts the table by fd number and opens one file per file id
// in gocr: slots name those files by their index in local.
func (r *Restorer) tableSlots(fds []*fdinfo.FdinfoEntry) ([]slot, []int, error) {
	var slots []slot
	var local []int
	index := map[uint32]int{}
	for _, f := range fds {
		i, ok := index[f.GetId()]
		if !ok {
			fd, err := r.Open(f.GetId())
			if err != nil {
				return nil, nil, fmt.Errorf("fd %d: %w", f.GetFd(), err)
			}
			i = len(local)
			index[f.GetId()], local = i, append(local, fd)
		}
		slots = append(slots, slot{fd: int(f.GetFd()), file: i, cloexec: f.GetFlags()&unix.FD_CLOEXEC != 0})
	}
	sort.Slice(slots, func(i, j int) bool { return slots[i].fd < slots[j].fd })
	for i := 1; i < len(slots); i++ {
		if slots[i].fd == slots[i-1].fd {
			return nil, nil, fmt.Errorf("fd %d: twice in the table", slots[i].fd)
		}
	}
	return slots, local, nil
}

// place carries out a placement: the files go in (one recvmmsg per few
// thousand fds), the fd on the socket's number is moved there, fillers and
// the socket are closed and close-on-exec is set. Each passed fd must land
// where the plan says; one that does not means the task had fds it should
// not have.
func place(t *remote.Task, p *remote.FdPasser, sock int, off uint64, pl placement, local []int) error {
	send := make([]int, len(pl.send))
	for i, f := range pl.send {
		send[i] = local[max(f, 0)] // a filler is one more copy of the first file
	}
	pass := p.Send
	if pl.allCloexec {
		pass = p.SendCloexec
	}
	got, err := pass(t, sock, off, send)
	if err != nil {
		return err
	}
	for i, n := range got {
		if n != pl.at[i] {
			return fmt.Errorf("fd %d: the passed file landed on fd %d: the task has fds besides the fd passing socket %d", pl.at[i], n, sock)
		}
	}
	if m := pl.moved; m != nil {
		flag := uint64(0)
		if m.cloexec {
			flag = unix.O_CLOEXEC
		}
		if _, err := t.Syscall(unix.SYS_DUP3, uint64(pl.movedAt), uint64(m.fd), flag); err != nil {
			return fmt.Errorf("fd %d: dup3 from passed fd %d over the fd passing socket: %w", m.fd, pl.movedAt, err)
		}
	}
	for _, c := range pl.closes {
		if _, err := t.Syscall(unix.SYS_CLOSE_RANGE, uint64(c.lo), uint64(c.hi), 0); err != nil {
			return fmt.Errorf("close fds %d-%d (fillers, fd passing socket %d): %w", c.lo, c.hi, sock, err)
		}
	}
	return setCloexec(t, pl.cloexec, pl.ceFds)
}

// setCloexec makes fds close-on-exec: one close_range call per range of
// rs, or before 5.11 (no CLOSE_RANGE_CLOEXEC) one fcntl per fd.
func setCloexec(t *remote.Task, rs []fdRange, fds []int) error {
	for i, c := range rs {
		_, err := t.Syscall(unix.SYS_CLOSE_RANGE, uint64(c.lo), uint64(c.hi), unix.CLOSE_RANGE_CLOEXEC)
		if i == 0 && errors.Is(err, unix.EINVAL) {
			return setCloexecEach(t, fds)
		}
		if err != nil {
			return fmt.Errorf("set close-on-exec on fds %d-%d: %w", c.lo, c.hi, err)
		}
	}
	return nil
}

func setCloexecEach(t *remote.Task, fds []int) error {
	for _, fd := range fds {
		if _, err := t.Syscall(unix.SYS_FCNTL, uint64(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
			return fmt.Errorf("fd %d: set close-on-exec: %w", fd, err)
		}
	}
	return nil
}
