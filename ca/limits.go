package ca

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/csr"
)

var (
	// ErrOverloaded means meshca is serving as many requests as it is configured to (Limits.MaxInFlight).
	// istio-agent retries it (ResourceExhausted) with backoff.
	ErrOverloaded = errors.New("too many requests in flight")
	// ErrRateLimited means one caller sent more requests than Limits.PerCallerRate allows.
	ErrRateLimited = errors.New("caller rate limit exceeded")
	// ErrTooManyFailures means one source address failed authentication more often than
	// Limits.FailedAuthnRate allows; its requests are refused before any authentication work until the
	// allowance refills.
	ErrTooManyFailures = errors.New("too many failed authentications from this address")
)

// Limits protect meshca from floods. A request beyond them is answered ResourceExhausted, which istio-agent
// retries with backoff, and is counted and audited like every other refusal.
type Limits struct {
	// MaxInFlight bounds the requests being handled at once; beyond it a request is refused before any work
	// is done. Default 1024 (the load tester saturates 2 cores at about 1,000-1,650 issuances/s with
	// ~1 ms each, so 1024 in flight is about a second of queue); -1 disables.
	MaxInFlight int `json:"maxInFlight,omitempty"`
	// PerCallerRate is the sustained requests per second one caller may send: a pod (by the pod UID of its
	// bound token) or, without pod claims, an identity. A healthy istio-agent renews twice a day. Default 50;
	// -1 disables.
	PerCallerRate float64 `json:"perCallerRate,omitempty"`
	// PerCallerBurst is how many requests a caller may send at once. Default 100.
	PerCallerBurst int `json:"perCallerBurst,omitempty"`
	// FailedAuthnRate is the sustained failed authentications per second one source address may cause;
	// beyond it (and FailedAuthnBurst) its requests are refused before authentication, so junk credentials
	// cannot turn into TokenReviews or key fetches. Default 5; -1 disables.
	FailedAuthnRate float64 `json:"failedAuthnRate,omitempty"`
	// FailedAuthnBurst is how many failed authentications a source may cause at once. Default 20.
	FailedAuthnBurst int `json:"failedAuthnBurst,omitempty"`
}

func (l Limits) withDefaults() Limits {
	if l.MaxInFlight == 0 {
		l.MaxInFlight = 1024
	}
	if l.PerCallerRate == 0 {
		l.PerCallerRate = 50
	}
	if l.PerCallerBurst == 0 {
		l.PerCallerBurst = 100
	}
	if l.FailedAuthnRate == 0 {
		l.FailedAuthnRate = 5
	}
	if l.FailedAuthnBurst == 0 {
		l.FailedAuthnBurst = 20
	}
	return l
}

// Validate reports every problem with l.
func (l Limits) Validate() error {
	var errs []error
	if l.MaxInFlight < -1 {
		errs = append(
			errs,
			fmt.Errorf("limits.maxInFlight %d: use a positive number, or -1 for no limit", l.MaxInFlight),
		)
	}
	if l.PerCallerRate < 0 && l.PerCallerRate != -1 {
		errs = append(
			errs,
			fmt.Errorf("limits.perCallerRate %g: use a positive rate, or -1 for no limit", l.PerCallerRate),
		)
	}
	if l.PerCallerBurst < 0 {
		errs = append(errs, fmt.Errorf("limits.perCallerBurst %d must not be negative", l.PerCallerBurst))
	}
	if l.FailedAuthnRate < 0 && l.FailedAuthnRate != -1 {
		errs = append(errs, fmt.Errorf("limits.failedAuthnRate %g: use a positive rate, or -1 for no limit",
			l.FailedAuthnRate))
	}
	if l.FailedAuthnBurst < 0 {
		errs = append(errs, fmt.Errorf("limits.failedAuthnBurst %d must not be negative", l.FailedAuthnBurst))
	}
	return errors.Join(errs...)
}

// limiter enforces Limits.
type limiter struct {
	slots    chan struct{} // nil: no in-flight limit
	callers  *buckets
	failures *buckets // by source address
	rules    *buckets // by policy rule and identity; each bucket at its rule's rate
	clock    func() time.Time
}

func newLimiter(l Limits, clock func() time.Time) *limiter {
	l = l.withDefaults()
	lim := &limiter{callers: newBuckets(l.PerCallerRate, l.PerCallerBurst),
		failures: newBuckets(l.FailedAuthnRate, l.FailedAuthnBurst), rules: newBuckets(0, 0), clock: clock}
	if l.MaxInFlight > 0 {
		lim.slots = make(chan struct{}, l.MaxInFlight)
	}
	return lim
}

// buckets are token buckets by key. Buckets idle for a minute are dropped, so memory follows the keys of the
// last minute, not every key ever seen.
type buckets struct {
	rate  rate.Limit // rate.Inf: no limit
	burst int

	mu     sync.Mutex
	m      map[string]*callerLimit
	pruned time.Time
}

type callerLimit struct {
	lim  *rate.Limiter
	seen time.Time
}

func newBuckets(perSecond float64, burst int) *buckets {
	b := &buckets{rate: rate.Limit(perSecond), burst: burst, m: map[string]*callerLimit{}}
	if perSecond < 0 {
		b.rate = rate.Inf
	}
	return b
}

// take takes one token from key's bucket (when spend) or only looks whether one is there, and reports
// whether there was.
func (b *buckets) take(key string, now time.Time, spend bool) bool {
	if b.rate == rate.Inf {
		return true
	}
	return b.takeAt(key, now, spend, b.rate, b.burst)
}

// takeAt is take for a bucket that runs at r with burst when it is created.
func (b *buckets) takeAt(key string, now time.Time, spend bool, r rate.Limit, burst int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Sub(b.pruned) > time.Minute {
		for k, v := range b.m {
			if now.Sub(v.seen) > time.Minute {
				delete(b.m, k)
			}
		}
		b.pruned = now
	}
	cl := b.m[key]
	if cl == nil {
		if !spend {
			return true
		}
		cl = &callerLimit{lim: rate.NewLimiter(r, burst)}
		b.m[key] = cl
	}
	cl.seen = now
	if !spend {
		return cl.lim.TokensAt(now) >= 1
	}
	return cl.lim.AllowN(now, 1)
}

// acquire takes an in-flight slot; release gives it back.
func (l *limiter) acquire() error {
	if l.slots == nil {
		return nil
	}
	select {
	case l.slots <- struct{}{}:
		return nil
	default:
		return fmt.Errorf("%w (%d); retry later", ErrOverloaded, cap(l.slots))
	}
}

func (l *limiter) release() {
	if l.slots != nil {
		<-l.slots
	}
}

// callerKey is who a request is charged to: the pod of a bound token, else the identity; a node agent acting
// for a workload is charged per workload, so a node full of pods starting at once is not throttled as one.
func callerKey(c *authn.Caller, target csr.Identity, impersonating bool) string {
	switch {
	case impersonating:
		return "for:" + target.String()
	case c.PodUID != "":
		return "pod:" + c.PodUID
	}
	return "id:" + c.ClusterID + "/" + target.String()
}

// allow charges one request to key.
func (l *limiter) allow(key string) error {
	if !l.callers.take(key, l.clock(), true) {
		return fmt.Errorf("%w: more than %g requests/s (burst %d) from this caller; retry later",
			ErrRateLimited, float64(l.callers.rate), l.callers.burst)
	}
	return nil
}

// checkSource refuses a source address that has used up its allowance of failed authentications.
func (l *limiter) checkSource(addr string) error {
	if src := sourceOf(addr); src != "" && !l.failures.take(src, l.clock(), false) {
		return fmt.Errorf("%w: more than %g failed authentications/s (burst %d); fix the credentials, then "+
			"retry later", ErrTooManyFailures, float64(l.failures.rate), l.failures.burst)
	}
	return nil
}

// failed charges one failed authentication to the source address.
func (l *limiter) failed(addr string) {
	if src := sourceOf(addr); src != "" {
		l.failures.take(src, l.clock(), true)
	}
}

// sourceOf is the host of a peer address ("" when there is none, e.g. an in-process call).
func sourceOf(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// allowAt charges one request to key, whose bucket runs at r with burst: a policy rule's per-identity rate,
// keyed by rule and identity.
func (l *limiter) allowAt(key string, r rate.Limit, burst int) error {
	if !l.rules.takeAt(key, l.clock(), true, r, burst) {
		return fmt.Errorf("%w: more than %g requests/s (burst %d)", ErrRateLimited, float64(r), burst)
	}
	return nil
}
