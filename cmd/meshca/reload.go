package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/ca/policy"
)

// policyReloadInterval is how often policyFile is read for changes. A mounted ConfigMap changes by a symlink
// swap that inotify on the file would miss; reading a small file every few seconds sees every change.
const policyReloadInterval = 5 * time.Second

// readPolicyFile decodes a file holding a policy: section, strictly, with key paths.
func readPolicyFile(path string) (policy.Config, []byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return policy.Config{}, nil, fmt.Errorf("policyFile: %w", err)
	}
	var wrap struct {
		Policy policy.Config `json:"policy"`
	}
	if err := decodeStrict(b, &wrap); err != nil {
		return policy.Config{}, nil, fmt.Errorf("%s: %w", path, err)
	}
	return wrap.Policy, b, nil
}

// loadPolicyFile reads policyFile, when set, into c.Policy, so that validation and serve see its rules.
func (c *Config) loadPolicyFile() error {
	if c.PolicyFile == "" {
		return nil
	}
	if len(c.Policy.Rules) > 0 {
		return errors.New("policy and policyFile: set one; policyFile holds the policy: section itself")
	}
	p, _, err := readPolicyFile(c.PolicyFile)
	if err != nil {
		return err
	}
	c.Policy = p
	return nil
}

// rulesSetter is what the reloader changes: ca.Issuer.
type rulesSetter interface {
	SetRules(policy.Config) error
}

// policyReloader re-reads path every interval and applies a changed policy. A policy that does not decode or
// validate is refused with a log line and meshca_policy_reloads_total{result="invalid"}; the rules in force
// stay. Requests are never paused: the issuer swaps compiled rules atomically.
type policyReloader struct {
	path     string
	interval time.Duration
	target   rulesSetter
	log      *slog.Logger
	reloads  *prometheus.CounterVec
	last     [sha256.Size]byte
}

func newPolicyReloader(path string, target rulesSetter, log *slog.Logger,
	reg prometheus.Registerer) (*policyReloader, error) {
	r := &policyReloader{path: path, interval: policyReloadInterval, target: target, log: log,
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshca_policy_reloads_total",
			Help: "Reloads of policyFile by result: ok (applied), invalid (refused; the previous policy stays)."},
			[]string{"result"})}
	r.reloads.WithLabelValues("ok")
	r.reloads.WithLabelValues("invalid")
	if reg != nil {
		if err := reg.Register(r.reloads); err != nil {
			return nil, fmt.Errorf("policy reload metrics: %w", err)
		}
	}
	if b, err := os.ReadFile(path); err == nil {
		r.last = sha256.Sum256(b) // what LoadConfig read and the issuer started with
	}
	return r, nil
}

// Run checks the file every interval until ctx ends.
func (r *policyReloader) Run(ctx context.Context) error {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			r.check()
		}
	}
}

// check applies the file when its content changed since the last attempt.
func (r *policyReloader) check() {
	b, err := os.ReadFile(r.path)
	if err != nil {
		if sum := sha256.Sum256(nil); r.last != sum {
			r.last = sum
			r.refuse(fmt.Errorf("policyFile: %w", err))
		}
		return
	}
	sum := sha256.Sum256(b)
	if sum == r.last {
		return
	}
	r.last = sum
	p, _, err := readPolicyFile(r.path)
	if err == nil {
		err = r.target.SetRules(p)
	}
	if err != nil {
		r.refuse(err)
		return
	}
	r.reloads.WithLabelValues("ok").Inc()
	r.log.Info("policy reloaded", "file", r.path, "rules", len(p.Rules))
}

func (r *policyReloader) refuse(err error) {
	r.reloads.WithLabelValues("invalid").Inc()
	r.log.Error("policy file refused; the previous policy stays in force", "file", r.path, "error", err)
}
