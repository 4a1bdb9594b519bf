package leader

import (
	"fmt"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Lease locates the Lease that decides which replica writes and carries client-go's leader-election timings.
// The publishers keep these as fields of their own Config (leaseNamespace, leaseName, identity,
// leaseDuration, renewDeadline, retryPeriod) and build a Lease from them.
type Lease struct {
	// Namespace is meshca's own namespace; required.
	Namespace string
	// Name is the Lease's name; each publisher has its own default.
	Name string
	// Identity names this replica in the Lease; default the host name (the pod name).
	Identity string
	// Duration, RenewDeadline and RetryPeriod default to 15s, 10s and 2s.
	Duration      time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
}

// Problems reports every problem with l that a configuration file can cause, each message prefixed with
// pkg and naming the configuration key. It has no side effects.
func (l Lease) Problems(pkg string) []error {
	var errs []error
	if l.Namespace == "" {
		errs = append(errs, fmt.Errorf("%s: leaseNamespace is required: the namespace meshca runs in", pkg))
	} else if msgs := validation.IsDNS1123Label(l.Namespace); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("%s: leaseNamespace %q: %s", pkg, l.Namespace, strings.Join(msgs, "; ")))
	}
	if l.Name != "" {
		if msgs := validation.IsDNS1123Subdomain(l.Name); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("%s: leaseName %q: %s", pkg, l.Name, strings.Join(msgs, "; ")))
		}
	}
	if l.Duration < 0 || l.RenewDeadline < 0 || l.RetryPeriod < 0 {
		errs = append(errs, fmt.Errorf("%s: durations must not be negative", pkg))
	}
	d := l.WithDefaults()
	if d.Duration <= d.RenewDeadline || d.RenewDeadline <= d.RetryPeriod {
		errs = append(errs, fmt.Errorf("%s: need leaseDuration (%s) > renewDeadline (%s) > retryPeriod (%s)",
			pkg, d.Duration, d.RenewDeadline, d.RetryPeriod))
	}
	return errs
}

// WithDefaults returns l with the host name as Identity and client-go's usual timings where they are unset.
// Name has no default here: each publisher names its own Lease.
func (l Lease) WithDefaults() Lease {
	if l.Identity == "" {
		l.Identity, _ = os.Hostname()
	}
	if l.Duration == 0 {
		l.Duration = 15 * time.Second
	}
	if l.RenewDeadline == 0 {
		l.RenewDeadline = 10 * time.Second
	}
	if l.RetryPeriod == 0 {
		l.RetryPeriod = 2 * time.Second
	}
	return l
}

// String returns "namespace/name".
func (l Lease) String() string { return l.Namespace + "/" + l.Name }
