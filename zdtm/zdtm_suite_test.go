package zdtm_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"
	. "github.com/onsi/gomega"
	"golang.org/x/sys/unix"

	"github.com/gocr/gocr/zdtm/harness"
	"github.com/gocr/gocr/zdtm/workloads"
)

// The suite is built from the environment at tree-construction time, so
// that filtered-out workloads are not even specs (they are not "skipped").
var (
	cfg    harness.Config
	cfgErr error
	runDir string // this run's directory under cfg.Results
	binDir string // built binaries, readable by the uns flavor's root
	engine harness.Engine
)

func TestZdtm(t *testing.T) {
	cfg, cfgErr = harness.ConfigFromEnv()
	// Ginkgo runs no BeforeSuite when there are no specs, so a bad
	// configuration or descriptor, which leaves none, is reported here.
	if cfgErr == nil {
		_, cfgErr = allWorkloads()
	}
	if cfgErr != nil {
		t.Fatalf("zdtm: %v", cfgErr)
	}
	RegisterFailHandler(Fail)
	RunSpecs(t, "zdtm")
}

var _ = BeforeSuite(func() {
	Expect(cfgErr).NotTo(HaveOccurred())
	Expect(os.Geteuid()).To(Equal(0), "the zdtm suite runs as root: it makes namespaces and mounts, and checkpoints")
	// Workloads daemonize: as a subreaper the suite inherits them, so it
	// can reap them and nothing outlives the run as a zombie of init.
	Expect(unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)).To(Succeed())
	Expect(os.MkdirAll(cfg.Results, 0o755)).To(Succeed())
	var err error
	runDir, err = os.MkdirTemp(cfg.Results, time.Now().Format("20060102-150405-"))
	Expect(err).NotTo(HaveOccurred())
	Expect(os.Chmod(runDir, 0o755)).To(Succeed())
	binDir = filepath.Join(runDir, "bin")
	Expect(buildBinaries(binDir)).To(Succeed())
	gocrBin := os.Getenv("GOCR_BIN")
	if gocrBin == "" {
		gocrBin = filepath.Join(binDir, "gocr")
	}
	engine, err = harness.ParseEngine(cfg.Engine, gocrBin)
	Expect(err).NotTo(HaveOccurred())
	GinkgoWriter.Printf("zdtm: engine %s, kernel %s, run directory %s\n", engine.Name(), kernelRelease(), runDir)
})

// buildBinaries builds gocr and the workloads statically into dir, unless
// GOCR_BIN / ZDTM_BIN_DIR point at prebuilt ones (as inside a VM).
func buildBinaries(dir string) error {
	if pre := os.Getenv("ZDTM_BIN_DIR"); pre != "" {
		binDir = pre
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	builds := [][]string{{"zdtm-workload", "./cmd/zdtm-workload"}}
	if os.Getenv("GOCR_BIN") == "" {
		builds = append(builds, []string{"gocr", "../cmd/gocr"})
	}
	for _, b := range builds {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b[0]), b[1])
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", b[1], err, out)
		}
	}
	if _, err := os.Stat("workloads/c/build.sh"); err == nil {
		cmd := exec.Command("bash", "workloads/c/build.sh", dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build C workloads: %v\n%s", err, out)
		}
	}
	return nil
}

func kernelRelease() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return "?"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// allWorkloads lists gocr's Go workloads, its C workloads and the external
// tests named in ZDTM_EXTERNAL, each with its descriptor.
func allWorkloads() ([]harness.Workload, error) {
	descs, err := harness.LoadDescs(workloads.Descriptors)
	if err != nil {
		return nil, err
	}
	var out []harness.Workload
	for _, w := range workloads.All() {
		d, ok := descs[w.Name]
		if !ok {
			return nil, fmt.Errorf("workload %s has no descriptor %s.desc", w.Name, w.Name)
		}
		out = append(out, harness.Workload{Name: w.Name, Gocr: true, Desc: d,
			Command: []string{"zdtm-workload", w.Name}})
	}
	cfs, err := fs.Sub(workloads.CDescriptors, "c")
	if err != nil {
		return nil, err
	}
	cdescs, err := harness.LoadDescs(cfs)
	if err != nil {
		return nil, err
	}
	for name, d := range cdescs {
		out = append(out, harness.Workload{Name: name, Gocr: true, Desc: d, Command: []string{name}})
	}
	for _, e := range cfg.External {
		w, err := harness.ExternalWorkload(e)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}

var _ = Describe("zdtm", func() {
	if cfgErr != nil {
		return // BeforeSuite reports it
	}
	ws, err := allWorkloads()
	if err != nil {
		cfgErr = err
		return
	}
	for _, w := range ws {
		if !cfg.Selected(w) {
			continue
		}
		Describe(w.Name, func() {
			for _, flavor := range cfg.Flavors {
				if !w.Desc.RunsIn(flavor) {
					continue
				}
				for _, mode := range cfg.Modes {
					if len(w.Desc.Modes) > 0 && !slices.Contains(w.Desc.Modes, mode) {
						continue
					}
					It(flavor+"/"+mode, func() { runSpec(w, flavor, mode) })
				}
			}
		})
	}
})

func runSpec(w harness.Workload, flavor, mode string) {
	if w.Desc.Arch != "" && w.Desc.Arch != map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH] {
		Skip(fmt.Sprintf("workload is for %s only", w.Desc.Arch))
	}
	if w.Desc.HasFlag("reqcr") && !engine.Checkpoints() {
		Skip(fmt.Sprintf("engine %s does not checkpoint: the workload checks what a restore does (%s)", engine.Name(), strings.Join(w.Desc.Opts, " ")))
	}
	ctx := context.Background()
	for _, f := range w.Desc.Features {
		if ok, why := engine.HasFeature(ctx, f); !ok {
			Skip(fmt.Sprintf("kernel feature %s missing: %s", f, why))
		}
	}
	if !filepath.IsAbs(w.Command[0]) {
		w.Command[0] = filepath.Join(binDir, w.Command[0])
	}
	dir := filepath.Join(runDir, strings.ReplaceAll(w.Name, "/", "_")+"."+flavor+"."+mode)
	spec := harness.Spec{Workload: w, Flavor: flavor, Mode: mode, Engine: engine, Dir: dir}
	res, err := harness.Run(ctx, spec)
	if err != nil {
		Fail(fmt.Sprintf("%s %s/%s with engine %s: %v\n(images and logs kept in %s)", w.Name, flavor, mode, engine.Name(), err, dir))
	}
	GinkgoWriter.Printf("%s %s/%s: %s\n", w.Name, flavor, mode, res.Verdict)
	os.RemoveAll(dir)
}

var _ = ReportAfterSuite("zdtm summary", func(r Report) {
	its := r.SpecReports.WithLeafNodeType(types.NodeTypeIt)
	p := its.CountWithState(types.SpecStatePassed)
	s := its.CountWithState(types.SpecStateSkipped)
	f := its.CountWithState(types.SpecStateFailureStates)
	if !r.SuiteSucceeded && f == 0 {
		// Setup failed before any spec ran: that is a failure, not zero.
		f = 1
		fmt.Printf("\nzdtm: the suite failed before its specs: %s\n", strings.Join(r.SpecialSuiteFailureReasons, "; "))
	}
	fmt.Printf("\nzdtm: %d passed, %d failed, %d skipped (engine %s, kernel %s)\n", p, f, s, cfg.Engine, kernelRelease())
	if f > 0 {
		fmt.Printf("zdtm: images and logs of failing specs are kept under %s\n", runDir)
	}
})
