// Package files dumps and restores a task's open files: the fd table
// (table.go) and one file per kind of file (regfile.go, pipe.go,
// eventfd.go, epoll.go, fifo.go, mqueue.go). Every open file description becomes one
// file_entry of files.img with an id; each fd is an fdinfo_entry naming it.
package files
