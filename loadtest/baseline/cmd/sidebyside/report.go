package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/meshca/meshca/loadtest"
	"github.com/meshca/meshca/loadtest/baseline"
)

// report prints the Markdown tables as the measurements arrive.
type report struct {
	opts      options
	started   time.Time
	inProcess map[loadtest.KeyType][]baseline.Measurement
	e2e       []e2eRun
	scen      []e2eRun
}

func p(format string, a ...any) { fmt.Printf(format+"\n", a...) }

func loadAvg() [3]float64 {
	var l [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err == nil {
		fmt.Sscanf(string(b), "%f %f %f", &l[0], &l[1], &l[2])
	}
	return l
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func (r *report) header() {
	if r.inProcess == nil {
		r.inProcess = map[loadtest.KeyType][]baseline.Measurement{}
	}
	l := loadAvg()
	p("# meshca side by side (make bench)")
	p("")
	p("- date: %s; meshca commit: %s; %s", r.started.UTC().Format(time.RFC3339), r.opts.commit, runtime.Version())
	p("- machine: %d CPUs (GOMAXPROCS %d), %s; load average at start %.1f %.1f %.1f (shared machine: wall-clock "+
		"figures move with the neighbours' load, CPU per issuance much less)", runtime.NumCPU(),
		runtime.GOMAXPROCS(0), cpuModel(), l[0], l[1], l[2])
	p("- CA: meshca's dev intermediate (ECDSA P-256) for every case; tokens: ES256, one per request; "+
		"ECDSA CSRs: a fresh key each; RSA-2048 CSRs: %d keys shared, each CSR for its own identity", r.opts.rsaPool)
	p("")
}

func (r *report) floorOf(key loadtest.KeyType, name string) time.Duration {
	for _, m := range r.inProcess[key] {
		if m.Name == name {
			return m.CPUPerOp()
		}
	}
	return 0
}

func (r *report) printInProcess() {
	p("## In-process: CPU per issuance (getrusage of this process, GC included; %d issuances per case, "+
		"GOMAXPROCS goroutines)", r.opts.n)
	p("")
	p("| case | CSR key | CPU µs/issuance | × stdlib floor | × essential floor | issuances/s (wall) |")
	p("|---|---|---:|---:|---:|---:|")
	for _, key := range keyTypes(r.opts.keys) {
		sf, ef := r.floorOf(key, caseStdlib), r.floorOf(key, caseEssential)
		for _, m := range r.inProcess[key] {
			p("| %s | %s | %.0f | %.2f | %.2f | %.0f |", m.Name, key, us(m.CPUPerOp()), ratio(m.CPUPerOp(), sf),
				ratio(m.CPUPerOp(), ef), m.PerSecond())
		}
	}
	p("")
}

func (r *report) printEndToEnd() {
	p("## End to end: gRPC + TLS + JWT through meshca-loadtest (same client, keys and tokens for both servers)")
	p("")
	p("One connection, at most 64 in flight, open loop; every request its own token; server CPU and peak RSS " +
		"from the kernel's accounting of the server process (/proc/PID/stat utime+stime, VmHWM); the load " +
		"client runs on the same 2 cores.")
	p("")
	p("| server | CSR key | run | offered/s | ok/s | dropped | errors | p50 ms | p99 ms | server CPU µs/cert | " +
		"× essential floor | peak RSS MiB | load avg |")
	p("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, e := range r.e2e {
		res := e.res
		ef := r.floorOf(loadtest.KeyType(e.key), caseEssential)
		p("| %s | %s | %s | %.0f | %.0f | %d | %s | %.2f | %.2f | %.0f | %.2f | %.0f | %.1f |", e.server, e.key, e.what,
			res.Rate, res.Throughput, res.Dropped, errs(res), ms(res.Latency.P50), ms(res.Latency.P99),
			res.Server.CPUPerOK, ratio(time.Duration(res.Server.CPUPerOK*1e3), ef), res.Server.PeakRSS/(1<<20),
			e.load[0])
	}
	p("")
}

func (r *report) find(server, key, what string) *loadtest.Result {
	for _, e := range r.e2e {
		if e.server == server && e.key == key && e.what == what {
			return e.res
		}
	}
	return nil
}

func (r *report) printRatios() {
	p("## Ratios")
	p("")
	p("| ratio | CSR key | value | target |")
	p("|---|---|---:|---|")
	for _, key := range keyTypes(r.opts.keys) {
		ef, sf := r.floorOf(key, caseEssential), r.floorOf(key, caseStdlib)
		p("| in-process meshca Issuer.Issue / essential floor (CPU) | %s | %.2f | |", key,
			ratio(r.floorOf(key, caseMeshcaIssue), ef))
		p("| in-process istiod IstioCA.Sign / stdlib floor (CPU) | %s | %.2f | |", key,
			ratio(r.floorOf(key, caseIstioSign), sf))
		m, i := r.find("meshca", string(key), "saturation"), r.find("istiod", string(key), "saturation")
		if m == nil || i == nil {
			continue
		}
		target := ""
		if key == loadtest.KeyECDSAP256 {
			target = "P1: ≤ 1.10"
		}
		p("| meshca server CPU per certificate / essential floor | %s | %.2f | %s |", key,
			ratio(time.Duration(m.Server.CPUPerOK*1e3), ef), target)
		p("| istiod server CPU per certificate / essential floor | %s | %.2f | |", key,
			ratio(time.Duration(i.Server.CPUPerOK*1e3), ef))
		p("| istiod server CPU / meshca server CPU per certificate | %s | %.2f | |", key,
			i.Server.CPUPerOK/m.Server.CPUPerOK)
		p("| meshca / istiod end-to-end throughput | %s | %.2f | P2: ≥ 1.5 |", key, m.Throughput/i.Throughput)
	}
	p("")
}

func (r *report) printScenarios() {
	p("## Scenarios")
	p("")
	p("| server | scenario | sent | ok | errors | retries | time to serve all s | ok/s | p50 ms | p99 ms | max ms | " +
		"server CPU µs/cert | peak RSS MiB | peak goroutines | load avg |")
	p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, e := range r.scen {
		res := e.res
		p("| %s | %s | %d | %d | %s | %d | %.1f | %.0f | %.2f | %.2f | %.0f | %.0f | %.0f | %.0f | %.1f |", e.server,
			e.what, res.Sent, res.OK, errs(res), res.Retries, res.Elapsed.Seconds(), res.Throughput,
			ms(res.Latency.P50), ms(res.Latency.P99), ms(res.Latency.Max), res.Server.CPUPerOK,
			res.Server.PeakRSS/(1<<20), res.Server.PeakGoroutines, e.load[0])
	}
	p("")
}

func (r *report) footer() {
	l := loadAvg()
	p("Finished in %v; load average at the end %.1f %.1f %.1f.", time.Since(r.started).Round(time.Second),
		l[0], l[1], l[2])
}

func errs(res *loadtest.Result) string {
	if len(res.Errors) == 0 {
		return "0"
	}
	var parts []string
	for c, n := range res.Errors {
		parts = append(parts, fmt.Sprintf("%s %d", c, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func us(d time.Duration) float64 { return float64(d) / 1e3 }
func ms(d time.Duration) float64 { return float64(d) / 1e6 }
func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
