package harness

import (
	"bufio"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Snapshot is what the kernel shows of a process tree, reduced to what must
// be the same before a checkpoint and after a restore: ids that the kernel
// hands out afresh (mount ids, pipe and socket inodes, peer group numbers)
// are left out.
type Snapshot struct {
	// Procs holds the processes by their pid in the root's pid namespace:
	// the pids a restore keeps. For a tree in a pid namespace of its own
	// the host's pids of its processes may change.
	Procs map[int]*ProcState
	// Mounts holds the mount table of every mount namespace of the tree,
	// under the same label as ProcState.Namespaces["mnt"].
	Mounts map[string][]string
}

// ProcState is one process of the tree. A zombie has its tree links, state
// and status, and no fds, maps or namespaces but its pid and user ones.
type ProcState struct {
	Pid        int               // in the root's pid namespace
	HostPid    int               // as the harness sees it
	Tree       string            // "state S ppid P pgid G sid S tty T fg G", ids as Pid, those of no process of the tree as "out"
	Status     []string          // essentials of /proc/PID/status
	Fds        []string          // "fd N: target flags F", pipes and sockets as "pipe#k", numbered over the tree
	Maps       []string          // merged "start-end perms path"
	Tids       []int             // threads
	Namespaces map[string]string // kind → "host" or "ns#k", numbered by first use in the tree
}

// statusKeys are the /proc/PID/status lines compared before and after.
// Threads is not among them: the tids are compared instead (see Diff).
var statusKeys = []string{"Name", "Umask", "Uid", "Gid", "Groups", "SigBlk", "SigIgn", "SigCgt",
	"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"}

// nsKinds are the links of /proc/PID/ns compared. time_for_children is
// among them: a process that made a time namespace for its children stays
// out of it (see labelSpace).
var nsKinds = []string{"cgroup", "ipc", "mnt", "net", "pid", "time", "time_for_children", "user", "uts"}

// labelSpace is the kind whose labels a kind of namespace link shares:
// time_for_children names time namespaces, and the same namespace must
// get the same label as a process's time_for_children and as its
// children's time.
func labelSpace(kind string) string { return strings.TrimSuffix(kind, "_for_children") }

// TreePids lists root and every descendant, parents before children: the
// children of each thread, zombies and orphans the root adopted among them.
func TreePids(root int) ([]int, error) {
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", root)); err != nil {
		return nil, fmt.Errorf("process %d: %w", root, err)
	}
	pids := []int{root}
	for i := 0; i < len(pids); i++ {
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pids[i]))
		for _, t := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pids[i], t.Name()))
			if err != nil {
				continue
			}
			for _, f := range strings.Fields(string(b)) {
				if c, err := strconv.Atoi(f); err == nil && !slices.Contains(pids, c) {
					pids = append(pids, c)
				}
			}
		}
	}
	return pids, nil
}

// TakeSnapshot reads the state of the tree rooted at root.
func TakeSnapshot(root int) (*Snapshot, error) {
	hostPids, err := TreePids(root)
	if err != nil {
		return nil, err
	}
	inner, err := treePids(hostPids)
	if err != nil {
		return nil, err
	}
	// Number namespaces, pipes and sockets in the order of the tree's own
	// pids, which a restore keeps, not in the host's.
	slices.SortFunc(hostPids, func(a, b int) int { return inner[a] - inner[b] })
	s := &Snapshot{Procs: map[int]*ProcState{}, Mounts: map[string][]string{}}
	own := namespaces(os.Getpid())
	labels := map[string]map[string]string{} // kind → inode → label
	label := func(kind, ino string) string {
		if labels[kind] == nil {
			labels[kind] = map[string]string{}
		}
		if labels[kind][ino] == "" {
			prefix := "ns" // namespaces are labelled ns#k whatever their kind
			if kind == "pipe" || kind == "socket" {
				prefix = kind
			}
			labels[kind][ino] = fmt.Sprintf("%s#%d", prefix, len(labels[kind])+1)
		}
		return labels[kind][ino]
	}
	for _, pid := range hostPids {
		ps := &ProcState{Pid: inner[pid], HostPid: pid, Namespaces: map[string]string{}}
		if ps.Tree, err = treeLinks(pid, inner); err != nil {
			return nil, err
		}
		if ps.Status, err = statusEssentials(pid); err != nil {
			return nil, err
		}
		if strings.HasPrefix(ps.Tree, "state Z ") {
			// A zombie's masks, handlers and credentials are what it had
			// when it died, which nothing can observe or use any more:
			// only its name is compared, with its state and exit.
			ps.Status = ps.Status[:1]
		}
		if ps.Fds, err = fdTable(pid, label); err != nil {
			return nil, err
		}
		if ps.Maps, err = mergedMaps(pid); err != nil {
			return nil, err
		}
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			return nil, err
		}
		for _, t := range tasks {
			if tid, err := innerTid(pid, t.Name()); err == nil {
				ps.Tids = append(ps.Tids, tid)
			}
		}
		// In a fixed order: two kinds share labels (labelSpace).
		nss := namespaces(pid)
		for _, kind := range slices.Sorted(maps.Keys(nss)) {
			if ino := nss[kind]; ino == own[kind] {
				ps.Namespaces[kind] = "host"
			} else {
				ps.Namespaces[kind] = label(labelSpace(kind), ino)
			}
		}
		// A zombie has no mount namespace left to read.
		if l, ok := ps.Namespaces["mnt"]; ok && s.Mounts[l] == nil {
			if s.Mounts[l], err = mountTable(pid); err != nil {
				return nil, err
			}
		}
		s.Procs[ps.Pid] = ps
	}
	return s, nil
}

// treePids maps the host's pids of a tree, root first, to their pids in the
// root's pid namespace (the NSpid of that level; descendants in nested pid
// namespaces have one there too).
func treePids(hostPids []int) (map[int]int, error) {
	out := map[int]int{}
	level := -1
	for _, pid := range hostPids {
		ids, err := nsPids(pid)
		if err != nil {
			return nil, err
		}
		if level < 0 {
			level = len(ids) - 1
		}
		if len(ids) <= level {
			return nil, fmt.Errorf("process %d of the tree is outside the pid namespace of its root (NSpid %v)", pid, ids)
		}
		out[pid] = ids[level]
	}
	return out, nil
}

// nsPids reads NSpid of /proc/PID/status: the pid in each pid namespace
// from the harness's down to the process's own.
func nsPids(pid int) ([]int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "NSpid:"); ok {
			var ids []int
			for _, f := range strings.Fields(v) {
				n, err := strconv.Atoi(f)
				if err != nil {
					return nil, fmt.Errorf("/proc/%d/status: NSpid %q", pid, v)
				}
				ids = append(ids, n)
			}
			if len(ids) > 0 {
				return ids, nil
			}
		}
	}
	return []int{pid}, nil // a kernel without NSpid has no nested pid namespaces to tell apart
}

// treeLinks reads the state, ppid, pgid and sid of pid, with the ids of
// processes of the tree as their pids in the root's pid namespace (inner)
// and any other as "out".
func treeLinks(pid int, inner map[int]int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	// comm may hold spaces and parentheses: fields start after the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return "", fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 4 {
		return "", fmt.Errorf("/proc/%d/stat: short", pid)
	}
	id := func(s string) string {
		n, err := strconv.Atoi(s)
		if p, ok := inner[n]; ok && err == nil {
			return strconv.Itoa(p)
		}
		return "out"
	}
	line := fmt.Sprintf("state %s ppid %s pgid %s sid %s", stateClass(f[0]), id(f[1]), id(f[2]), id(f[3]))
	if f[0] != "Z" && len(f) >= 6 {
		// A zombie keeps whatever terminal it had when it died, which no
		// one can use any more.
		line += " tty " + ttyName(f[4])
		if f[4] != "0" {
			line += " fg " + id(f[5])
		}
	}
	return line, nil
}

// ttyName names the controlling terminal of tty_nr in /proc/PID/stat:
// "none", "pty N" for /dev/pts/N (which a restore gives back with its
// index), or the device's numbers.
func ttyName(s string) string {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 {
		return "none"
	}
	// The kernel's new_encode_dev: minor bits 0-7 and 20-31, major 8-19.
	major, minor := n>>8&0xfff, n&0xff|n>>12&0xfff00
	if major == 136 {
		return fmt.Sprintf("pty %d", minor)
	}
	return fmt.Sprintf("dev %d:%d", major, minor)
}

// stateClass keeps what a restore must preserve: a zombie stays a zombie, a
// stopped task stays stopped; running and sleeping are the same thing here.
func stateClass(s string) string {
	switch s {
	case "Z", "T", "t":
		return s
	}
	return "alive"
}

// statusEssentials reads the compared lines of /proc/PID/status. SigBlk is
// read a few times and the most frequent value kept: a thread caught inside
// a signal handler shows the handler's mask for a moment, which is not the
// state a checkpoint must keep.
func statusEssentials(pid int) ([]string, error) {
	var reads [][]string
	for range 3 {
		r, err := readStatus(pid)
		if err != nil {
			return nil, err
		}
		reads = append(reads, r)
		time.Sleep(2 * time.Millisecond)
	}
	out := reads[0]
	for i, l := range out {
		if !strings.HasPrefix(l, "SigBlk:") {
			continue
		}
		count := map[string]int{}
		for _, r := range reads {
			if i < len(r) {
				count[r[i]]++
			}
		}
		for v, n := range count {
			if n > count[out[i]] {
				out[i] = v
			}
		}
	}
	return out, nil
}

func readStatus(pid int) ([]string, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && slices.Contains(statusKeys, k) {
			out = append(out, k+": "+strings.Join(strings.Fields(v), " "))
		}
	}
	return out, sc.Err()
}

// oTmpfileBit is __O_TMPFILE in an fd's flags (octal 020000000).
const oTmpfileBit = 0o20000000

var tmpfileName = regexp.MustCompile(`/#[0-9]+ \(deleted\)$`)

// fdTable reads the fds of pid; label names a pipe or socket by its kind
// and inode, the same name for the same inode anywhere in the tree.
func fdTable(pid int, label func(kind, ino string) string) ([]string, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(ents, func(a, b os.DirEntry) int { return atoi(a.Name()) - atoi(b.Name()) })
	mounts := mountsByID(pid)
	var out []string
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		flags, mnt := "?", ""
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name())); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(l, "flags:"); ok {
					flags = strings.TrimSpace(v)
				}
				if v, ok := strings.CutPrefix(l, "mnt_id:"); ok {
					mnt = strings.TrimSpace(v)
				}
			}
		}
		if fl, err := strconv.ParseUint(flags, 8, 32); err == nil && fl&oTmpfileBit != 0 {
			// A file made with O_TMPFILE is named by its inode number
			// ("DIR/#12345 (deleted)"), which a new file cannot keep.
			target = tmpfileName.ReplaceAllString(target, "/#INODE (deleted)")
		}
		line := fmt.Sprintf("fd %s: %s flags %s", e.Name(), normalizeFdTarget(target, label), flags)
		if strings.HasPrefix(target, "/") && mnt != "" {
			// The mount a file was opened on is part of the file: the same
			// mount point, root and filesystem after restore.
			on, ok := mounts[mnt]
			if !ok {
				on = "a mount of another namespace"
			}
			line += " on " + on
		}
		out = append(out, line)
	}
	return out, nil
}

// mountsByID describes each mount of pid's namespace by its mount point,
// root and filesystem type, by mount id.
func mountsByID(pid int) map[string]string {
	out := map[string]string{}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		return out
	}
	for _, l := range strings.Split(string(b), "\n") {
		fl := strings.Fields(l)
		sep := slices.Index(fl, "-")
		if sep < 6 || len(fl) < sep+2 {
			continue
		}
		out[fl[0]] = fmt.Sprintf("%s root=%s %s", fl[4], fl[3], fl[sep+1])
	}
	return out
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// normalizeFdTarget replaces the inode numbers of pipes and sockets, which
// a restore cannot keep, by labels: a new pipe is the same pipe as far as
// the processes can tell, as long as the same ones share it.
func normalizeFdTarget(t string, label func(kind, ino string) string) string {
	for _, kind := range []string{"pipe", "socket"} {
		if ino, ok := strings.CutPrefix(t, kind+":["); ok {
			return label(kind, strings.TrimSuffix(ino, "]"))
		}
	}
	return t
}

// mergedMaps returns the VMAs of pid with neighbours of the same perms and
// backing merged, as zdtm compares them: the kernel may split or merge
// VMAs differently after a restore without the process seeing a difference.
func mergedMaps(pid int) ([]string, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	type vma struct {
		start, end  uint64
		perms, path string
	}
	var vmas []vma
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 5 {
			continue
		}
		var v vma
		se := strings.SplitN(fl[0], "-", 2)
		v.start, _ = strconv.ParseUint(se[0], 16, 64)
		v.end, _ = strconv.ParseUint(se[1], 16, 64)
		v.perms = fl[1]
		if len(fl) > 5 {
			v.path = strings.Join(fl[5:], " ")
		}
		if v.path == "[vsyscall]" {
			continue
		}
		if n := len(vmas); n > 0 && vmas[n-1].end == v.start && vmas[n-1].perms == v.perms && vmas[n-1].path == v.path {
			vmas[n-1].end = v.end
			continue
		}
		vmas = append(vmas, v)
	}
	out := make([]string, len(vmas))
	for i, v := range vmas {
		out[i] = fmt.Sprintf("%x-%x %s %s", v.start, v.end, v.perms, v.path)
	}
	return out, sc.Err()
}

// mountTable returns the mountinfo of pid without ids, devices and peer
// group numbers: mount point, root, fs type, source, options, propagation.
func mountTable(pid int) ([]string, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		sep := slices.Index(fl, "-")
		if sep < 6 || len(fl) < sep+4 {
			return nil, fmt.Errorf("/proc/%d/mountinfo: malformed line %q", pid, sc.Text())
		}
		var prop []string
		for _, o := range fl[6:sep] {
			k, _, _ := strings.Cut(o, ":")
			prop = append(prop, k)
		}
		if len(prop) == 0 {
			prop = []string{"private"}
		}
		out = append(out, fmt.Sprintf("%s root=%s %s %s opts=%s super=%s prop=%s",
			fl[4], fl[3], fl[sep+1], fl[sep+2], fl[5], fl[sep+3], strings.Join(prop, ",")))
	}
	return out, sc.Err()
}

func namespaces(pid int) map[string]string {
	out := map[string]string{}
	for _, k := range nsKinds {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, k)); err == nil {
			out[k] = l
		}
	}
	return out
}

// Diff describes every difference between two snapshots of one tree, one
// per line, "" when they match.
func Diff(before, after *Snapshot) string {
	var b strings.Builder
	var pids []int
	for p := range before.Procs {
		pids = append(pids, p)
	}
	for p := range after.Procs {
		if before.Procs[p] == nil {
			pids = append(pids, p)
		}
	}
	sort.Ints(pids)
	for _, pid := range pids {
		x, y := before.Procs[pid], after.Procs[pid]
		switch {
		case y == nil:
			fmt.Fprintf(&b, "pid %d: missing after restore\n", pid)
			continue
		case x == nil:
			fmt.Fprintf(&b, "pid %d: appeared after restore\n", pid)
			continue
		}
		diffLines(&b, fmt.Sprintf("pid %d tree", pid), []string{x.Tree}, []string{y.Tree})
		diffLines(&b, fmt.Sprintf("pid %d status", pid), x.Status, y.Status)
		diffLines(&b, fmt.Sprintf("pid %d fds", pid), x.Fds, y.Fds)
		diffTids(&b, pid, x.Tids, y.Tids)
		diffMaps(&b, pid, x.Maps, y.Maps)
		diffLines(&b, fmt.Sprintf("pid %d namespaces", pid), nsLines(x.Namespaces), nsLines(y.Namespaces))
	}
	var labels []string
	for l := range before.Mounts {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	for _, l := range labels {
		diffLines(&b, "mountinfo of mnt "+l, before.Mounts[l], after.Mounts[l])
	}
	return b.String()
}

func nsLines(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// diffLines writes "-" for lines only before and "+" for lines only after,
// keeping their order.
func diffLines(b *strings.Builder, what string, x, y []string) {
	count := func(l []string) map[string]int {
		m := map[string]int{}
		for _, s := range l {
			m[s]++
		}
		return m
	}
	cx, cy := count(x), count(y)
	var lines []string
	for _, s := range x {
		if cy[s] > 0 {
			cy[s]--
			continue
		}
		lines = append(lines, "  - "+s)
	}
	for _, s := range y {
		if cx[s] > 0 {
			cx[s]--
			continue
		}
		lines = append(lines, "  + "+s)
	}
	if len(lines) > 0 {
		fmt.Fprintf(b, "%s:\n%s\n", what, strings.Join(lines, "\n"))
	}
}

// innerTid is a thread's id as its own process sees it: the last NSpid of
// its status. For a tree in a pid namespace of its own that is what must
// survive; the id outside belongs to the host.
func innerTid(pid int, task string) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, task))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "NSpid:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				return strconv.Atoi(f[len(f)-1])
			}
		}
	}
	return strconv.Atoi(task)
}

// diffTids reports threads lost between the two looks. Threads that
// appeared are not a difference: the Go runtime starts more when it finds
// its threads were stopped a while, as around any checkpoint.
func diffTids(b *strings.Builder, pid int, x, y []int) {
	var lost []string
	for _, t := range x {
		if !slices.Contains(y, t) {
			lost = append(lost, strconv.Itoa(t))
		}
	}
	if len(lost) > 0 {
		fmt.Fprintf(b, "pid %d threads:\n  - lost %s\n", pid, strings.Join(lost, " "))
	}
}

type mapRange struct {
	start, end  uint64
	perms, path string
	line        string
}

func parseRanges(lines []string) []mapRange {
	out := make([]mapRange, 0, len(lines))
	for _, l := range lines {
		f := strings.SplitN(l, " ", 3)
		se := strings.SplitN(f[0], "-", 2)
		r := mapRange{perms: f[1], line: l}
		if len(f) > 2 {
			r.path = f[2]
		}
		r.start, _ = strconv.ParseUint(se[0], 16, 64)
		r.end, _ = strconv.ParseUint(se[1], 16, 64)
		out = append(out, r)
	}
	return out
}

// diffMaps reports memory that changed. Every range of the first look must
// be covered, page for page, by ranges of the second with the same
// protections and backing. Only the Go runtime's way of growing is let
// through, because workloads keep running between the looks: anonymous
// reservations (---p) that became read-write, and new anonymous memory,
// either read-write or reserved. New file mappings, new executable memory
// and anything lost or changed are differences.
func diffMaps(b *strings.Builder, pid int, x, y []string) {
	xs, ys := parseRanges(x), parseRanges(y)
	var lines []string
	for _, r := range xs {
		ok := func(o mapRange) bool {
			return o.path == r.path && (o.perms == r.perms || (runtimeGrowth(r) && runtimeGrowth(o)))
		}
		if !covered(r, ys, ok) {
			lines = append(lines, "  - "+r.line)
		}
	}
	for _, r := range ys {
		if !slices.Contains(x, r.line) && !runtimeGrowth(r) {
			lines = append(lines, "  + "+r.line)
		}
	}
	if len(lines) > 0 {
		fmt.Fprintf(b, "pid %d maps:\n%s\n", pid, strings.Join(lines, "\n"))
	}
}

// runtimeGrowth is anonymous memory a Go runtime maps or commits as it
// runs: read-write or reserved, never executable.
func runtimeGrowth(r mapRange) bool {
	return r.path == "" && (r.perms == "rw-p" || r.perms == "---p")
}

// covered reports whether [r.start, r.end) lies in the union of the ranges
// of ys that ok accepts (ys are sorted, as maps lists them).
func covered(r mapRange, ys []mapRange, ok func(mapRange) bool) bool {
	at := r.start
	for _, o := range ys {
		if o.end <= at || !ok(o) {
			continue
		}
		if o.start > at {
			return false
		}
		at = o.end
		if at >= r.end {
			return true
		}
	}
	return at >= r.end
}
