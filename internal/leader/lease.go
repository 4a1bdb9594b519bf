package leader

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// The defaults of LeaseConfig's timings: client-go's usual ones.
const (
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
)

// LeaseConfig locates the Lease that decides which replica writes and carries client-go's leader-election
// timings. It is the one home of these settings: every leader-elected part of meshca (trustBundle,
// crl.configMaps, k8sSigner) embeds it in its Config, so each reads the same keys beside its own.
type LeaseConfig struct {
	// LeaseNamespace is meshca's own namespace; required.
	LeaseNamespace string `json:"leaseNamespace"`
	// LeaseName is the Lease's name; each part that embeds LeaseConfig has its own default.
	LeaseName string `json:"leaseName,omitempty"`
	// Identity names this replica in the Lease; default the host name (the pod name).
	Identity string `json:"identity,omitempty"`
	// LeaseDuration, RenewDeadline and RetryPeriod are client-go's leader-election timings; defaults 15s, 10s
	// and 2s. A replica that stops without releasing the Lease is replaced after LeaseDuration.
	LeaseDuration time.Duration `json:"leaseDuration,omitempty"`
	RenewDeadline time.Duration `json:"renewDeadline,omitempty"`
	RetryPeriod   time.Duration `json:"retryPeriod,omitempty"`
}

// Validate reports every problem with l that a configuration file can cause, each message prefixed with
// pkg and naming the configuration key. It has no side effects.
func (l LeaseConfig) Validate(pkg string) error {
	var errs []error
	if l.LeaseNamespace == "" {
		errs = append(errs, fmt.Errorf("%s: leaseNamespace: required: the namespace meshca runs in", pkg))
	} else if msgs := validation.IsDNS1123Label(l.LeaseNamespace); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("%s: leaseNamespace: %q: %s", pkg, l.LeaseNamespace,
			strings.Join(msgs, "; ")))
	}
	if l.LeaseName != "" {
		if msgs := validation.IsDNS1123Subdomain(l.LeaseName); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("%s: leaseName: %q: %s", pkg, l.LeaseName, strings.Join(msgs, "; ")))
		}
	}
	if l.LeaseDuration < 0 || l.RenewDeadline < 0 || l.RetryPeriod < 0 {
		errs = append(errs, fmt.Errorf("%s: leaseDuration, renewDeadline and retryPeriod must not be negative", pkg))
	}
	d := l.WithDefaults("")
	if d.LeaseDuration <= d.RenewDeadline || d.RenewDeadline <= d.RetryPeriod {
		errs = append(errs, fmt.Errorf("%s: need leaseDuration (%s) > renewDeadline (%s) > retryPeriod (%s)",
			pkg, d.LeaseDuration, d.RenewDeadline, d.RetryPeriod))
	}
	return errors.Join(errs...)
}

// WithDefaults returns l with name as LeaseName, the host name as Identity and client-go's usual timings where
// they are unset.
func (l LeaseConfig) WithDefaults(name string) LeaseConfig {
	if l.LeaseName == "" {
		l.LeaseName = name
	}
	if l.Identity == "" {
		l.Identity, _ = os.Hostname()
	}
	if l.LeaseDuration == 0 {
		l.LeaseDuration = DefaultLeaseDuration
	}
	if l.RenewDeadline == 0 {
		l.RenewDeadline = DefaultRenewDeadline
	}
	if l.RetryPeriod == 0 {
		l.RetryPeriod = DefaultRetryPeriod
	}
	return l
}

// String returns "namespace/name".
func (l LeaseConfig) String() string { return l.LeaseNamespace + "/" + l.LeaseName }
