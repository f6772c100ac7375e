// Package mem dumps and restores a task's address space: the VMAs (vma.go;
// SysV shared memory attachments in sysv.go; mapvmas.go maps a whole
// image's with few injected calls) and the contents of the pages that
// matter (pages.go).
package mem
