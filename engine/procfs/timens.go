package procfs

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// TimeOffsets are the offsets of a time namespace's monotonic and boot-time
// clocks from the initial time namespace's (see time_namespaces(7)).
type TimeOffsets struct {
	Monotonic, Boottime time.Duration
}

// TimeNSOffsets reads /proc/PID/timens_offsets. The file shows the
// namespace pid's children are born in (its time_for_children), which is
// its own time namespace unless it unshared one without forking since.
func TimeNSOffsets(pid int) (TimeOffsets, error) {
	b, err := readFile(pid, "timens_offsets")
	if err != nil {
		return TimeOffsets{}, err
	}
	o, err := ParseTimeOffsets(b)
	if err != nil {
		return TimeOffsets{}, fmt.Errorf("parse %s: %w", path(pid, "timens_offsets"), err)
	}
	return o, nil
}

// ParseTimeOffsets parses the text of a timens_offsets file: a line
// "CLOCK SECONDS NANOSECONDS" per clock, seconds signed and nanoseconds
// below 1e9. Clocks other than monotonic and boottime (none so far) are
// skipped; those two must be there.
func ParseTimeOffsets(b []byte) (TimeOffsets, error) {
	var o TimeOffsets
	var mono, boot bool
	err := lines(b, func(n int, line []byte) error {
		f := strings.Fields(string(line))
		if len(f) == 0 {
			return nil
		}
		if len(f) != 3 {
			return fmt.Errorf("%q: want clock, seconds and nanoseconds: %w", line, errSyntax)
		}
		sec, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return fmt.Errorf("%q: seconds: %w", line, errSyntax)
		}
		nsec, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil || nsec >= 1e9 {
			return fmt.Errorf("%q: nanoseconds: %w", line, errSyntax)
		}
		// A time.Duration holds ±292 years; the kernel keeps a
		// namespace's clocks below 146.
		if sec > math.MaxInt64/int64(time.Second)-1 || sec < math.MinInt64/int64(time.Second)+1 {
			return fmt.Errorf("%q: %d seconds is out of range: %w", line, sec, errSyntax)
		}
		d := time.Duration(sec)*time.Second + time.Duration(nsec)
		switch f[0] {
		case "monotonic", "1": // the first implementation used the clock ids
			o.Monotonic, mono = d, true
		case "boottime", "7":
			o.Boottime, boot = d, true
		}
		return nil
	})
	if err != nil {
		return TimeOffsets{}, err
	}
	if !mono || !boot {
		return TimeOffsets{}, fmt.Errorf("no monotonic or no boottime line: %w", errSyntax)
	}
	return o, nil
}

// String is the offsets as timens_offsets takes them: nanoseconds are
// never negative, so -1.5 s is "-2 500000000".
func (o TimeOffsets) String() string {
	line := func(name string, d time.Duration) string {
		sec, nsec := int64(d/time.Second), int64(d%time.Second)
		if nsec < 0 {
			sec, nsec = sec-1, nsec+1e9
		}
		return fmt.Sprintf("%s %d %d\n", name, sec, nsec)
	}
	return line("monotonic", o.Monotonic) + line("boottime", o.Boottime)
}
