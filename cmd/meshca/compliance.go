package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"

	"github.com/meshca/meshca/ca/authn/kube"
	"github.com/meshca/meshca/internal/compliance"
)

// tlsPolicy resolves the compliancePolicy key and COMPLIANCE_POLICY (they must agree when both are set),
// proves with a handshake that this process can serve it, and hands it to every TLS endpoint and client in
// cfg. It returns the handshake counter for the server.
func tlsPolicy(ctx context.Context, cfg *Config, log *slog.Logger, reg prometheus.Registerer,
	getenv func(string) string) (compliance.Policy, *compliance.Handshakes, error) {
	p, err := compliance.Resolve(cfg.CompliancePolicy, getenv(compliance.EnvVar))
	if err != nil {
		return "", nil, fmt.Errorf("compliancePolicy: %w", err)
	}
	if err := p.SelfTest(ctx); err != nil {
		return "", nil, fmt.Errorf("compliancePolicy %s: %w", p, err)
	}
	h, err := compliance.NewHandshakes(reg, log)
	if err != nil {
		return "", nil, err
	}
	for i := range cfg.Backends {
		if v := cfg.Backends[i].Vault; v != nil {
			v.TLSPolicy = p
		}
		if s := cfg.Backends[i].StepCA; s != nil {
			s.TLSPolicy = p
		}
	}
	if cfg.CRL != nil {
		cfg.CRL.Admin.TLSPolicy = p
	}
	if p != compliance.None {
		log.Info("compliance policy applies to every TLS connection", "policy", string(p))
	}
	return p, h, nil
}

// restWithPolicy makes the API-server client use p (kube.WithPolicy).
func restWithPolicy(c *rest.Config, p compliance.Policy) error { return kube.WithPolicy(c, p) }
