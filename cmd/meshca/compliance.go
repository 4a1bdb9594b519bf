package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"

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

// restWithPolicy makes the API-server client use p: client-go builds its TLS configuration from files and
// has no hook for groups or versions, so under a policy meshca builds the transport itself from the same
// settings (client certificates and CA included). Exec credential plugins that return client certificates
// are not supported under a policy; bearer tokens and exec tokens are.
func restWithPolicy(c *rest.Config, p compliance.Policy) error {
	if c == nil || p == compliance.None {
		return nil
	}
	tc, err := rest.TLSConfigFor(c)
	if err != nil {
		return fmt.Errorf("kubernetes TLS configuration: %w", err)
	}
	if tc == nil { // plain HTTP: nothing to restrict
		return nil
	}
	p.Apply(tc)
	proxy := c.Proxy
	if proxy == nil {
		proxy = http.ProxyFromEnvironment
	}
	c.Transport = &http.Transport{Proxy: proxy, TLSClientConfig: tc, ForceAttemptHTTP2: true,
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second, MaxIdleConnsPerHost: 25, IdleConnTimeout: 90 * time.Second}
	// client-go refuses a custom transport together with TLS options: they are in tc now.
	c.TLSClientConfig = rest.TLSClientConfig{}
	return nil
}
