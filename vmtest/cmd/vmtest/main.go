// Command vmtest runs gocr's zdtm suite inside QEMU on Debian's kernels:
//
//	vmtest -kernel 6.1 [-T regex] [-engine none|gocr]   one kernel
//	vmtest -kernel all                                  the matrix
//	vmtest -list                                        resolve and fetch only
//
// Kernels are cached under $KCACHE, else $XDG_CACHE_HOME/gocr/kernels.
// Results go to -out (one directory per kernel: console.log, junit.xml,
// zdtm.log, check.txt, failed.tgz) with the matrix in matrix.txt.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/gocr/gocr/vmtest"
	"github.com/gocr/gocr/vmtest/kernel"
	"github.com/gocr/gocr/vmtest/qemu"
)

func main() {
	var (
		kernels  = flag.String("kernel", "6.1", "kernel lines, comma-separated, or all ("+strings.Join(kernel.LineNames(), ", ")+")")
		engine   = flag.String("engine", "gocr", "ZDTM_ENGINE in the guest: gocr, none, external:CMD")
		tests    = flag.String("T", "", "ZDTM_TESTS: workloads matching this regex")
		flavors  = flag.String("F", "", "ZDTM_FLAVORS: h,ns,uns")
		modes    = flag.String("mode", "", "ZDTM_MODES: plain,leave-running,iter3")
		out      = flag.String("out", filepath.Join(os.TempDir(), "gocr-vmtest"), "results directory")
		cache    = flag.String("cache", kernel.DefaultCacheDir(), "kernel cache ($KCACHE)")
		refresh  = flag.Duration("refresh", 24*time.Hour, "ask Debian's archive again when the cached package lists are older than this (0: always)")
		mem      = flag.Int("mem", 0, "guest memory, MiB (0: 2048 without checkpoints, 4096 with: images live in the guest's RAM)")
		cpus     = flag.Int("cpus", 0, "vCPUs per guest (0: 2 for one VM, 1 when VMs run side by side under TCG)")
		jobs     = flag.Int("j", 0, "VMs at once (0: one per host CPU under TCG, at most the kernels)")
		timeout  = flag.Duration("timeout", 0, "wall clock per VM (0: 20m for engine none, 90m for an engine that checkpoints: every spec is dumped and restored, in three modes, under TCG)")
		kvm      = flag.String("kvm", "auto", "use KVM: auto (if a probe guest runs under it, else TCG), on (fail if it does not), off")
		qemuBin  = flag.String("qemu", qemu.Binary, "the QEMU system emulator to run")
		vmlinux  = flag.String("vmlinux", "", "boot this kernel image of your own instead of Debian's (its virtio console built in, or its modules under -modules)")
		modDir   = flag.String("modules", "", "with -vmlinux: the kernel's lib/modules/RELEASE directory")
		inject   = flag.String("inject", "", "make the guest misbehave to prove the host notices: panic, hang")
		appendKA = flag.String("append", "", "extra kernel command line")
		repo     = flag.String("repo", ".", "gocr's source tree")
		ldflags  = flag.String("ldflags", "", "go build -ldflags for gocr")
		list     = flag.Bool("list", false, "only resolve and fetch the kernels")
		quiet    = flag.Bool("q", false, "do not stream the guests' consoles")
	)
	flag.Parse()
	if *mem == 0 {
		*mem = 4096
		if *engine == "none" {
			*mem = 2048
		}
	}
	if *timeout == 0 {
		*timeout = 90 * time.Minute
		if *engine == "none" {
			*timeout = 20 * time.Minute
		}
	}
	log := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "vmtest: "+format+"\n", args...)
	}
	ctx, stop := vmtest.SignalContext(context.Background(), log)
	defer stop()
	if *kvm == "on" {
		// Fail before fetching or building anything.
		if err := qemu.OpenKVM(); err != nil {
			log("-kvm on: %v", err)
			os.Exit(1)
		}
	}

	lines := strings.Split(*kernels, ",")
	if *kernels == "all" {
		lines = kernel.LineNames()
	}
	if *vmlinux != "" {
		lines = nil
	}
	start := time.Now()
	var ks []*kernel.Kernel
	if *vmlinux != "" {
		k, err := kernel.Local(*vmlinux, *modDir)
		if err != nil {
			log("%v", err)
			os.Exit(1)
		}
		ks = append(ks, k)
	}
	for _, l := range lines {
		t := time.Now()
		k, err := kernel.Fetch(ctx, strings.TrimSpace(l), kernel.Options{CacheDir: *cache, MaxListAge: *refresh,
			Modules: vmtest.GuestModules, Optional: vmtest.OptionalGuestModules, Log: log})
		if err != nil {
			log("%v", err)
			os.Exit(1)
		}
		how := "downloaded"
		if k.Cached {
			how = "cached"
		}
		log("kernel %s = %s (%s, %s, %s in %v)", k.Line, k.ABI, strings.Join(k.Packages, " "), k.Suite, how, time.Since(t).Round(time.Millisecond))
		ks = append(ks, k)
	}
	if *list {
		return
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log("%v", err)
		os.Exit(1)
	}
	absRepo, _ := filepath.Abs(*repo)
	build := filepath.Join(*out, "build")
	initBin, err := vmtest.BuildInit(ctx, absRepo, build)
	if err != nil {
		log("%v", err)
		os.Exit(1)
	}
	accel, why, err := vmtest.ChooseAccel(ctx, vmtest.AccelProbe{Mode: *kvm, Kernel: ks[0], Init: initBin,
		Dir: *out, QEMU: *qemuBin, Log: log})
	if err != nil {
		log("%v", err)
		os.Exit(1)
	}
	log("accelerator %s", why)
	kvmOn := accel.Name == "kvm"
	if *jobs == 0 {
		*jobs = len(ks)
		if !kvmOn {
			*jobs = min(len(ks), runtime.NumCPU())
		}
	}
	if *cpus == 0 {
		*cpus = 2
		if !kvmOn && *jobs > 1 {
			*cpus = 1
		}
	}
	p, err := vmtest.BuildPayload(ctx, absRepo, build, *ldflags, log)
	if err != nil {
		log("%v", err)
		os.Exit(1)
	}
	log("%d kernel(s), %d VM(s) at once, %d vCPU and %d MiB each, %s, engine %s, %v per VM", len(ks), *jobs, *cpus, *mem, accel, *engine, *timeout)
	o := vmtest.Options{Engine: *engine, Tests: *tests, Flavors: *flavors, Modes: *modes, Out: *out, MemMiB: *mem,
		CPUs: *cpus, Jobs: *jobs, Timeout: *timeout, Accel: accel, QEMU: *qemuBin, Inject: *inject, Append: *appendKA, Log: log}
	if !*quiet {
		o.Console = os.Stdout
	}
	rs := vmtest.RunMatrix(ctx, ks, p, o)
	wall := time.Since(start)
	fmt.Println()
	vmtest.WriteTable(os.Stdout, rs, *engine, wall)
	fmt.Printf("vmtest: accelerator %s\n", why)
	if err := vmtest.SaveMatrix(*out, rs, *engine, wall); err != nil {
		log("%v", err)
	}
	fmt.Printf("vmtest: per-kernel results and JUnit reports under %s/<kernel>/\n", *out)
	if ctx.Err() != nil {
		log("interrupted: %v", context.Cause(ctx))
		os.Exit(130)
	}
	for _, r := range rs {
		if !r.OK() {
			os.Exit(1)
		}
	}
}
