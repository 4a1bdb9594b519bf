package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc/codes"
)

// Result is what one run did. Scheduled = Sent + Dropped, and Sent = OK + Invalid + the sum of Errors.
type Result struct {
	Addr       string   `json:"addr"`
	Scenario   Scenario `json:"scenario"`
	Identities int      `json:"identities"`
	// Pods is the number of simulated pods (Config.PodsPerIdentity), each with its own bound token; 0 without.
	Pods        int     `json:"pods,omitempty"`
	Key         KeyType `json:"key"`
	Rate        float64 `json:"rate"`
	Concurrency int     `json:"concurrency"`
	// Duration is the configured length; Elapsed runs from the first request until the later of Duration and
	// the last response; Prepare is the time spent before the timer (tokens, keys and CSRs, connections).
	Duration time.Duration `json:"-"`
	Elapsed  time.Duration `json:"-"`
	Prepare  time.Duration `json:"-"`
	// Interrupted is set when the context ended the run before Duration.
	Interrupted bool `json:"interrupted,omitempty"`

	Scheduled int `json:"scheduled"`
	Sent      int `json:"sent"`
	// Dropped requests were due while Concurrency requests were in flight; they were never sent.
	Dropped int `json:"dropped"`
	// OK responses carried a valid certificate chain; Invalid ones did not (see check), or were issued for a
	// foreign identity.
	OK      int `json:"ok"`
	Invalid int `json:"invalid_response"`
	// Errors counts failed requests by gRPC code name ("PermissionDenied", "Unavailable", ...).
	Errors map[string]int `json:"errors"`
	// Samples holds the first message seen for each error code and for "invalid_response".
	Samples map[string]string `json:"samples,omitempty"`

	// Throughput is OK responses per second of Elapsed; SentRate is requests sent per second of the time
	// requests were scheduled (Duration, or less when the run was interrupted).
	Throughput float64 `json:"throughput"`
	SentRate   float64 `json:"sent_rate"`
	// Latency is over the requests meshca answered with a certificate chain (OK and Invalid).
	Latency Latency `json:"latency_ms"`
	// Retries counts the answers that were retried (Config.Retries); a request that still failed after its
	// last retry is counted in Errors under its last code.
	Retries int `json:"retries"`
	// Server is the server's own accounting of the run (Config.ServerMetrics); nil without it.
	Server *ServerStats `json:"server,omitempty"`
}

// Latency holds nearest-rank percentiles; zero when nothing was answered.
type Latency struct {
	P50, P90, P99, Max time.Duration
}

// MarshalJSON writes the percentiles in milliseconds.
func (l Latency) MarshalJSON() ([]byte, error) {
	ms := func(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }
	return json.Marshal(map[string]float64{"p50": ms(l.P50), "p90": ms(l.P90), "p99": ms(l.P99), "max": ms(l.Max)})
}

// ErrorCount is the number of failed requests, whatever their code.
func (r *Result) ErrorCount() int {
	n := 0
	for _, v := range r.Errors {
		n += v
	}
	return n
}

// Failed reports whether any request failed or got an invalid response.
func (r *Result) Failed() bool { return r.Invalid > 0 || r.ErrorCount() > 0 }

func summarize(cfg Config, outcomes []outcome, sent []int, dropped int, elapsed time.Duration) *Result {
	res := &Result{Addr: cfg.Addr, Key: cfg.Key, Rate: cfg.Rate, Concurrency: cfg.Concurrency, Duration: cfg.Duration,
		Elapsed: elapsed, Sent: len(sent), Dropped: dropped, Errors: map[string]int{}, Samples: map[string]string{}}
	var lat []time.Duration
	for _, i := range sent {
		o := outcomes[i]
		switch {
		case o.code != codes.OK:
			name := o.code.String()
			res.Errors[name]++
			if _, ok := res.Samples[name]; !ok {
				res.Samples[name] = o.msg
			}
		case o.invalid:
			res.Invalid++
			if _, ok := res.Samples["invalid_response"]; !ok {
				res.Samples["invalid_response"] = o.msg
			}
		default:
			res.OK++
		}
		if o.code == codes.OK {
			lat = append(lat, o.latency)
		}
	}
	slices.Sort(lat)
	rank := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[max(int(math.Ceil(p/100*float64(len(lat))))-1, 0)]
	}
	res.Latency = Latency{P50: rank(50), P90: rank(90), P99: rank(99), Max: rank(100)}
	if elapsed > 0 {
		res.Throughput = float64(res.OK) / elapsed.Seconds()
	}
	window := min(cfg.Duration, elapsed) // an interrupted run scheduled for less than Duration
	if cfg.Scenario == ScenarioStorm {
		window = elapsed
	}
	if window > 0 {
		res.SentRate = float64(res.Sent) / window.Seconds()
	}
	return res
}

// WriteJSON writes r as one JSON object; durations are in seconds, latencies in milliseconds.
func (r *Result) WriteJSON(w io.Writer) error {
	type alias Result
	v := struct {
		*alias
		Duration float64 `json:"duration_seconds"`
		Elapsed  float64 `json:"elapsed_seconds"`
		Prepare  float64 `json:"prepare_seconds"`
	}{(*alias)(r), r.Duration.Seconds(), r.Elapsed.Seconds(), r.Prepare.Seconds()}
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(v)
}

// WriteTable writes r for people.
func (r *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format+"\n", a...) }
	if r.Pods > 0 {
		p("target\t%s (%d identities, %d pods with pod claims, %s keys)", r.Addr, r.Identities, r.Pods, r.Key)
	} else {
		p("target\t%s (%d identities, %s keys)", r.Addr, r.Identities, r.Key)
	}
	if r.Scenario == ScenarioStorm {
		p("storm\tone request per identity, each on a new TLS connection, at most %d in flight", r.Concurrency)
	} else {
		p("offered\t%g req/s for %v, at most %d in flight", r.Rate, r.Duration, r.Concurrency)
	}
	if r.Interrupted {
		p("interrupted\tyes, after %v", r.Elapsed.Round(time.Millisecond))
	}
	p("prepared in\t%v", r.Prepare.Round(time.Millisecond))
	p("scheduled\t%d", r.Scheduled)
	p("sent\t%d\t%.1f req/s", r.Sent, r.SentRate)
	p("dropped\t%d\t(in-flight limit reached)", r.Dropped)
	p("ok\t%d\t%.1f certs/s over %v", r.OK, r.Throughput, r.Elapsed.Round(time.Millisecond))
	p("invalid_response\t%d\t%s", r.Invalid, r.Samples["invalid_response"])
	p("errors\t%d", r.ErrorCount())
	codes := make([]string, 0, len(r.Errors))
	for c := range r.Errors {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	for _, c := range codes {
		p("  %s\t%d\t%s", c, r.Errors[c], strings.TrimSpace(r.Samples[c]))
	}
	l := r.Latency
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/1e6) }
	if r.OK+r.Invalid == 0 {
		p("latency\tno successful requests")
	} else {
		p("latency\tp50 %s  p90 %s  p99 %s  max %s", ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max))
	}
	p("retries\t%d\t(ResourceExhausted, Unavailable, DeadlineExceeded... retried with backoff)", r.Retries)
	if s := r.Server; s != nil {
		p("server cpu\t%.2fs\t%.0f µs per certificate", s.CPUSeconds, s.CPUPerOK)
		p("server peak\t%.1f MiB RSS, %.0f goroutines\t(%d samples)", s.PeakRSS/(1<<20), s.PeakGoroutines,
			s.Samples)
	}
	return tw.Flush()
}
