// Package files dumps and restores a task's open files: the fd table
// (table.go, and place.go, which puts a whole table on its numbers in a
// few injected calls) and one file per kind of file (regfile.go, pipe.go,
// eventfd.go, epoll.go, fifo.go, signalfd.go, timerfd.go, inotify.go,
// memfd.go, tty.go, mqueue.go, unix.go with unix_pending.go; socket options
// of any family in sockopts.go), with what stands in for a file deleted
// while in use (ghost.go, linkremap.go). Every open file description becomes one
// file_entry of files.img with an id; each fd is an fdinfo_entry naming it.
package files
