package loadtest

import (
	"fmt"
	"io"
	"math"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
)

// live counts a run as it goes, for the progress line; the Result is computed from the outcomes afterwards.
type live struct {
	sent, ok, failed, inFlight atomic.Int64
	// lat is a log-scale latency histogram: bucket b holds latencies below latBase·latStep^b.
	lat [latBuckets]atomic.Int64
}

const (
	latBuckets = 64
	latBase    = 50 * time.Microsecond
	latStep    = 1.25 // 64 buckets reach about 8 minutes
)

func (l *live) start() { l.sent.Add(1); l.inFlight.Add(1) }

func (l *live) done(o outcome) {
	l.inFlight.Add(-1)
	if o.code != codes.OK || o.invalid {
		l.failed.Add(1)
	}
	if o.code != codes.OK {
		return
	}
	l.ok.Add(1)
	b := 0
	if o.latency > latBase {
		b = min(int(math.Log(float64(o.latency)/float64(latBase))/math.Log(latStep))+1, latBuckets-1)
	}
	l.lat[b].Add(1)
}

// p99 is the upper bound of the bucket holding the 99th percentile of the answered requests so far.
func (l *live) p99() (time.Duration, bool) {
	var counts [latBuckets]int64
	var total int64
	for b := range counts {
		counts[b] = l.lat[b].Load()
		total += counts[b]
	}
	if total == 0 {
		return 0, false
	}
	want := int64(math.Ceil(0.99 * float64(total)))
	var seen int64
	for b, c := range counts {
		if seen += c; seen >= want {
			return time.Duration(float64(latBase) * math.Pow(latStep, float64(b))), true
		}
	}
	return 0, false
}

// line is one progress line: elapsed, achieved send rate, in flight, results so far and p99 so far.
func (l *live) line(elapsed time.Duration) string {
	p99 := "-"
	if d, ok := l.p99(); ok {
		p99 = fmt.Sprintf("%.1fms", float64(d)/1e6)
	}
	rate := 0.0
	if elapsed > 0 {
		rate = float64(l.sent.Load()) / elapsed.Seconds()
	}
	return fmt.Sprintf("%6.1fs  sent %d (%.1f/s)  in flight %d  ok %d  errors %d  p99 <= %s",
		elapsed.Seconds(), l.sent.Load(), rate, l.inFlight.Load(), l.ok.Load(), l.failed.Load(), p99)
}

// report writes a progress line to w once a second until stop is closed, then a final one and a newline.
// Each line overwrites the previous one (carriage return), as on a terminal.
func (l *live) report(w io.Writer, start time.Time, stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			fmt.Fprintf(w, "\r%s\n", l.line(time.Since(start)))
			return
		case <-t.C:
			fmt.Fprintf(w, "\r%s", l.line(time.Since(start)))
		}
	}
}
