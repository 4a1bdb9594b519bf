package main

import (
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/kubesigner"
)

// validateK8sSigner checks the k8sSigner section, including that its signers name configured backends.
func (c *Config) validateK8sSigner() error {
	if c.K8sSigner == nil {
		return nil
	}
	names := make([]string, 0, len(c.Backends))
	for _, b := range c.Backends {
		names = append(names, b.Name)
	}
	return errors.Join(inSection(c.K8sSigner.Validate(), "kubesigner", "k8sSigner"),
		inSection(c.K8sSigner.CheckBackends(names), "kubesigner", "k8sSigner"))
}

// k8sSigner starts the Kubernetes CSR signer (k8sSigner section) when it is configured.
func (a *app) k8sSigner(cfg *Config, restCfg *rest.Config, issuer *ca.Issuer, log *slog.Logger,
	reg prometheus.Registerer) error {
	if cfg.K8sSigner == nil {
		return nil
	}
	sc := *cfg.K8sSigner
	sc.Kube, sc.Issuer, sc.Logger, sc.Registerer = restCfg, issuer, log.With("component", "k8s-signer"), reg
	s, err := kubesigner.New(sc)
	if err != nil {
		return err
	}
	a.run = append(a.run, s.Run)
	return nil
}
