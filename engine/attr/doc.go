// Package attr saves and restores attributes the kernel keeps for each
// task beside its registers and memory, which CRIU keeps in core-N.img:
// the scheduling policy, real-time priority and nice value of every
// thread, the process's oom_score_adj, and its audit login uid. Each is
// read and set from gocr's side (sched_setscheduler, setpriority and
// /proc/PID/oom_score_adj act on another task), with what this machine
// cannot set again refused at dump time, naming it.
package attr
