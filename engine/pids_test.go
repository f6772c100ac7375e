package engine

import "testing"

func TestLastPidClearOf(t *testing.T) {
	for _, c := range []struct {
		name   string
		want   []int
		pidMax int
		last   int
	}{
		{"one run", []int{500, 501, 502}, 32768, 502},
		{"straddles the wrap", []int{32764, 32765, 32766, 32767, 300, 301, 302, 303}, 32768, 303},
		{"two runs, wider gap after the first", []int{400, 401, 30000, 30001}, 32768, 401},
		{"two runs, wider gap after the second", []int{400, 401, 1000, 1001}, 32768, 1001},
		{"unsorted with repeats", []int{700, 650, 700, 651}, 32768, 700},
		{"a pid below the wrap point", []int{1, 2}, 32768, 2},
	} {
		if got := lastPidClearOf(c.want, c.pidMax); got != c.last {
			t.Errorf("%s: lastPidClearOf(%v, %d) = %d, want %d", c.name, c.want, c.pidMax, got, c.last)
		}
	}
}
