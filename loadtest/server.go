package loadtest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// ServerStats is what the server's own process accounting said about a run, read from its Prometheus
// endpoint (the standard process and Go collectors). CPU is the stable figure on a shared machine: wall time
// depends on the neighbours, the CPU the server spent per certificate much less.
type ServerStats struct {
	// CPUSeconds is the growth of process_cpu_seconds_total (user + system) from just before the first request
	// to just after the last response.
	CPUSeconds float64 `json:"cpu_seconds"`
	// CPUPerOK is CPUSeconds over the certificates issued (OK responses), in microseconds.
	CPUPerOK float64 `json:"cpu_us_per_ok"`
	// PeakRSS is the largest process_resident_memory_bytes seen while sampling, in bytes.
	PeakRSS float64 `json:"peak_rss_bytes"`
	// PeakGoroutines is the largest go_goroutines seen while sampling.
	PeakGoroutines float64 `json:"peak_goroutines"`
	// Samples is how many scrapes the peaks are taken over.
	Samples int `json:"samples"`
	// Source says where CPU and RSS come from: "proc" (the kernel's accounting of Config.ServerPID; PeakRSS is
	// VmHWM, the exact peak) or "metrics" (Config.ServerMetrics, sampled).
	Source string `json:"source"`
}

// maxMetricsBody bounds one scrape of the server's metrics.
const maxMetricsBody = 8 << 20

// serverSample is one scrape of the three gauges and counters a run needs.
type serverSample struct {
	cpu, rss, goroutines float64
}

// scrape reads the server's process CPU, resident memory and goroutines from its Prometheus text endpoint.
func scrape(ctx context.Context, client *http.Client, url string) (serverSample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return serverSample{}, fmt.Errorf("server metrics %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return serverSample{}, fmt.Errorf("server metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return serverSample{}, fmt.Errorf("server metrics %s: HTTP %d", url, resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(io.LimitReader(resp.Body, maxMetricsBody))
	if err != nil {
		return serverSample{}, fmt.Errorf("server metrics %s: %w", url, err)
	}
	value := func(name string) (float64, error) {
		f, ok := fams[name]
		if !ok || len(f.GetMetric()) == 0 {
			return 0, fmt.Errorf("server metrics %s: no %s (register the process and Go collectors)", url, name)
		}
		m := f.GetMetric()[0]
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), nil
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), nil
		}
		return m.GetUntyped().GetValue(), nil
	}
	var s serverSample
	var errs [3]error
	s.cpu, errs[0] = value("process_cpu_seconds_total")
	s.rss, errs[1] = value("process_resident_memory_bytes")
	s.goroutines, errs[2] = value("go_goroutines")
	for _, e := range errs {
		if e != nil {
			return serverSample{}, e
		}
	}
	return s, nil
}

// serverWatch samples a server's metrics until stopped, keeping the first CPU reading and the peaks.
type serverWatch struct {
	url    string
	client *http.Client
	first  serverSample
	stop   chan struct{}
	done   chan struct{}

	mu    sync.Mutex
	peak  serverSample
	count int
}

// serverSampleEvery is how often the peaks are sampled during a run.
const serverSampleEvery = 500 * time.Millisecond

// watchServer takes the first reading (an error here stops the run before the timer) and samples the peaks
// in the background until finish.
func watchServer(ctx context.Context, url string) (*serverWatch, error) {
	w := &serverWatch{url: url, client: &http.Client{Timeout: 5 * time.Second},
		stop: make(chan struct{}), done: make(chan struct{})}
	first, err := scrape(ctx, w.client, url)
	if err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	w.first = first
	w.observe(first)
	go func() {
		defer close(w.done)
		t := time.NewTicker(serverSampleEvery)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
				if s, err := scrape(ctx, w.client, url); err == nil {
					w.observe(s)
				}
			}
		}
	}()
	return w, nil
}

func (w *serverWatch) observe(s serverSample) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.peak.rss = max(w.peak.rss, s.rss)
	w.peak.goroutines = max(w.peak.goroutines, s.goroutines)
	w.count++
}

// finish stops sampling, takes the last CPU reading and returns the stats for ok issued certificates.
func (w *serverWatch) finish(ctx context.Context, ok int) (*ServerStats, error) {
	close(w.stop)
	<-w.done
	last, err := scrape(ctx, w.client, w.url)
	if err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	w.observe(last)
	st := &ServerStats{CPUSeconds: last.cpu - w.first.cpu, PeakRSS: w.peak.rss,
		PeakGoroutines: w.peak.goroutines, Samples: w.count}
	if ok > 0 {
		st.CPUPerOK = st.CPUSeconds / float64(ok) * 1e6
	}
	return st, nil
}
