package ca

import (
	"errors"
	"fmt"
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
	return errors.Join(errs...)
}

// limiter enforces Limits. Per-caller limiters idle for a minute are dropped, so memory follows the callers
// of the last minute, not every caller ever seen.
type limiter struct {
	slots chan struct{} // nil: no in-flight limit
	rate  rate.Limit
	burst int
	clock func() time.Time

	mu      sync.Mutex
	callers map[string]*callerLimit
	pruned  time.Time
}

type callerLimit struct {
	lim  *rate.Limiter
	seen time.Time
}

func newLimiter(l Limits, clock func() time.Time) *limiter {
	l = l.withDefaults()
	lim := &limiter{rate: rate.Limit(l.PerCallerRate), burst: l.PerCallerBurst, clock: clock,
		callers: map[string]*callerLimit{}}
	if l.MaxInFlight > 0 {
		lim.slots = make(chan struct{}, l.MaxInFlight)
	}
	if l.PerCallerRate < 0 {
		lim.rate = rate.Inf
	}
	return lim
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

// allow charges one request to key at the per-caller rate.
func (l *limiter) allow(key string) error {
	if l.rate == rate.Inf {
		return nil
	}
	if err := l.allowAt(key, l.rate, l.burst); err != nil {
		return fmt.Errorf("%w from this caller; retry later", err)
	}
	return nil
}

// allowAt charges one request to key, whose limiter runs at r with burst (a policy rule's rate when key
// is a rule's).
func (l *limiter) allowAt(key string, r rate.Limit, burst int) error {
	now := l.clock()
	l.mu.Lock()
	if now.Sub(l.pruned) > time.Minute {
		for k, v := range l.callers {
			if now.Sub(v.seen) > time.Minute {
				delete(l.callers, k)
			}
		}
		l.pruned = now
	}
	cl := l.callers[key]
	if cl == nil {
		cl = &callerLimit{lim: rate.NewLimiter(r, burst)}
		l.callers[key] = cl
	}
	cl.seen = now
	ok := cl.lim.AllowN(now, 1)
	l.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: more than %g requests/s (burst %d)", ErrRateLimited, float64(r), burst)
	}
	return nil
}
