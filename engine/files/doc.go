// Package files dumps and restores a task's open files: the fd table
// (table.go, and place.go, which puts a whole table on its numbers in a
// few injected calls) and one file per kind of file (regfile.go, pipe.go,
// eventfd.go, epoll.go). Every open file description becomes one
// file_entry of files.img with an id; each fd is an fdinfo_entry naming it.
package files
