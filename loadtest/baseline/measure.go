package baseline

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Measurement is one in-process case: n operations on every CPU, their CPU time from process accounting and
// their wall time.
type Measurement struct {
	Name   string
	N      int
	CPU    time.Duration // user + system CPU of the whole process (GC included) while the operations ran
	Wall   time.Duration
	Errors int
	// FirstErr is the first error seen, if any.
	FirstErr error
}

// CPUPerOp is the CPU time per operation.
func (m Measurement) CPUPerOp() time.Duration { return m.CPU / time.Duration(max(m.N, 1)) }

// PerSecond is the operations per second of wall time.
func (m Measurement) PerSecond() float64 { return float64(m.N) / m.Wall.Seconds() }

// ProcessCPU is the CPU time (user + system) this process has used so far.
func ProcessCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("baseline: getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// Measure runs op(0) .. op(n-1) on GOMAXPROCS goroutines and measures them. Everything op needs must be made
// before: the process's CPU is measured, not op's.
func Measure(name string, n int, op func(i int) error) (Measurement, error) {
	runtime.GC() // garbage from the preparation is not this case's
	m := Measurement{Name: name, N: n}
	cpu0, err := ProcessCPU()
	if err != nil {
		return m, err
	}
	var next, errs atomic.Int64
	var first sync.Once
	start := time.Now()
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := op(i); err != nil {
					errs.Add(1)
					first.Do(func() { m.FirstErr = err })
				}
			}
		})
	}
	wg.Wait()
	m.Wall = time.Since(start)
	cpu1, err := ProcessCPU()
	if err != nil {
		return m, err
	}
	m.CPU, m.Errors = cpu1-cpu0, int(errs.Load())
	return m, nil
}
