// Package guest is the contract between vmtest on the host and its /init
// inside the VM: where the run's configuration sits in the initramfs, the
// virtio-serial port the results come out through, and what they hold.
package guest

// Paths inside the initramfs.
const (
	ConfigPath = "/vmtest/config.json" // Config, as JSON
	SuiteDir   = "/zdtm"               // the suite's working directory (workloads/c/*.desc live below it)
	BinDir     = "/zdtm/bin"           // gocr, zdtm-workload, C workloads: ZDTM_BIN_DIR
	TestBinary = "/zdtm/zdtm.test"     // `go test -c ./zdtm`
	ModulesDir = "/vmtest/modules"     // kernel modules, loaded in Config.Modules order
	ResultsDir = "/tmp/gocr-zdtm"      // ZDTM_RESULTS in the guest
)

// PortName is the name of the virtio-serial port the results are written
// to (QEMU: -device virtserialport,name=results).
const PortName = "results"

// Config tells /init what to do.
type Config struct {
	Kernel  string   // the matrix line, e.g. "6.1", for messages
	Modules []string // file names under ModulesDir, in load order
	// Optional modules are loaded after Modules; one that fails to load
	// is logged, and the workloads needing it are skipped by feature.
	Optional []string
	Env      []string // added to the suite's environment (ZDTM_*)
	Args     []string // arguments of the test binary
	// Inject makes the guest misbehave on purpose, to prove that the host
	// notices: "panic" (a kernel panic mid-suite) or "hang" (never power
	// off). Empty in real runs.
	Inject string
	// Probe asks /init only to answer: load the modules, send a status
	// with the kernel's release and power off. vmtest boots such a guest
	// to learn whether KVM really runs guests here.
	Probe bool
	// InjectAfter is the number of seconds into the suite at which a
	// panic is injected.
	InjectAfter int
}

// Files of the results stream. The stream is a tar archive; the host
// unpacks it into the kernel's output directory.
const (
	FileStatus   = "status.json" // Status
	FileJUnit    = "junit.xml"   // the suite's JUnit report
	FileLog      = "zdtm.log"    // the suite's output
	FileCheck    = "check.txt"   // `gocr check --all`
	FileInit     = "init.log"    // what /init did
	FileFailures = "failed.tgz"  // images and logs of failing specs
)

// Status is what /init reports about the run.
type Status struct {
	Release   string  // uname -r
	ExitCode  int     // of the test binary; -1 when it could not run
	Error     string  // why the suite could not run, if it could not
	Summary   string  // the suite's "zdtm: N passed, ..." line
	Seconds   float64 // the suite's wall time in the guest
	FdinfoMnt bool    // /proc/self/fdinfo shows mnt_id
	Modules   []string
}
