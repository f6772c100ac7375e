package workloads

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocr/gocr/zdtm/lib"
)

const (
	pipelineStages = 6  // between the producer and the consumer: 8 threads in all
	pipelineBatch  = 16 // items the producer sends per tick
)

// pipelineItem travels from the producer through every stage to the
// consumer.
type pipelineItem struct {
	seq, val uint64
	stages   uint32 // one bit per stage that handled it
}

// pipelineStep is what stage s does to a value; the consumer recomputes it.
func pipelineStep(s int, v uint64) uint64 {
	return (v^uint64(s+1)*0x9e3779b97f4a7c15)*0xff51afd7ed558ccd + uint64(s)
}

// GoPipeline runs GOMAXPROCS(8) and a channel pipeline over 8 locked OS
// threads: a producer driven by a time.Ticker, 6 transforming stages and a
// consumer that checks every item as it arrives — sequence numbers without
// gaps or repeats, the value the stages must have computed, every stage
// seen — and keeps a running checksum. After SIGTERM every stage must have
// moved on since Ready; the producer then stops and, once drained, the
// consumer's count and checksum must equal the producer's.
var GoPipeline = lib.Workload{Name: "go_pipeline", Run: func(t *lib.T) {
	runtime.GOMAXPROCS(8)
	var counts [pipelineStages + 2]atomic.Uint64 // producer, stages, consumer
	var stop atomic.Bool
	var sentSum, sentN uint64 // the producer's, read after it stopped
	chans := make([]chan pipelineItem, pipelineStages+1)
	for i := range chans {
		chans[i] = make(chan pipelineItem, 16)
	}
	var wg sync.WaitGroup
	wg.Add(pipelineStages + 2)
	go func() { // producer
		defer wg.Done()
		runtime.LockOSThread()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		seed := splitmix64(0x919e)
		for seq := uint64(0); !stop.Load(); {
			<-tick.C
			for range pipelineBatch {
				v := seed.next()
				sentSum = pipelineMix(sentSum, seq, v)
				chans[0] <- pipelineItem{seq: seq, val: v}
				seq++
				sentN = seq
				counts[0].Add(1)
			}
		}
		close(chans[0])
	}()
	for s := range pipelineStages {
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			for it := range chans[s] {
				it.val = pipelineStep(s, it.val)
				it.stages |= 1 << s
				chans[s+1] <- it
				counts[s+1].Add(1)
			}
			close(chans[s+1])
		}()
	}
	var gotSum, gotN uint64
	failc := make(chan error, 1)
	go func() { // consumer
		defer wg.Done()
		runtime.LockOSThread()
		seed := splitmix64(0x919e)
		for it := range chans[pipelineStages] {
			v := seed.next()
			want := v
			for s := range pipelineStages {
				want = pipelineStep(s, want)
			}
			switch {
			case it.seq != gotN:
				failc <- fmt.Errorf("item %d arrived when %d was due: lost, repeated or reordered", it.seq, gotN)
			case it.val != want:
				failc <- fmt.Errorf("item %d has value %#x, want %#x", it.seq, it.val, want)
			case it.stages != 1<<pipelineStages-1:
				failc <- fmt.Errorf("item %d went through stages %b", it.seq, it.stages)
			default:
				gotSum = pipelineMix(gotSum, it.seq, v)
				gotN++
				counts[pipelineStages+1].Add(1)
				continue
			}
			// Drain so the other stages can finish.
			for range chans[pipelineStages] {
			}
			return
		}
	}()
	snapshot := func() (c [pipelineStages + 2]uint64) {
		for i := range c {
			c[i] = counts[i].Load()
		}
		return
	}
	waitProgress := func(since [pipelineStages + 2]uint64, within time.Duration) {
		deadline := time.Now().Add(within)
		for {
			select {
			case err := <-failc:
				t.Fatal(err)
			default:
			}
			now, all := snapshot(), true
			for i := range now {
				all = all && now[i] > since[i]
			}
			if all {
				return
			}
			if time.Now().After(deadline) {
				t.Fail("pipeline stalled: counts %v, were %v %v ago", now, since, within)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitProgress([pipelineStages + 2]uint64{}, 5*time.Second)
	atReady := snapshot()
	t.Ready()
	for !t.Stopped() {
		select {
		case err := <-failc:
			t.Fatal(err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	atTerm := snapshot()
	waitProgress(atTerm, 5*time.Second)
	for i := range atTerm {
		if atTerm[i] < atReady[i] {
			t.Fail("thread %d's count went back from %d to %d", i, atReady[i], atTerm[i])
		}
	}
	stop.Store(true)
	wg.Wait()
	select {
	case err := <-failc:
		t.Fatal(err)
	default:
	}
	if gotN != sentN || gotSum != sentSum {
		t.Fail("consumer got %d items, checksum %#x; producer sent %d, checksum %#x", gotN, gotSum, sentN, sentSum)
	}
	t.Logf("%d items through %d stages, %d since ready", gotN, pipelineStages, gotN-atReady[pipelineStages+1])
	t.Pass()
}}

// pipelineMix folds one item into a running checksum.
func pipelineMix(sum, seq, v uint64) uint64 {
	return (sum^v^seq<<1)*0x100000001b3 + 1
}
