package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/authn/kube"
	"github.com/meshca/meshca/ca/expiry"
	"github.com/meshca/meshca/ca/server"
	"github.com/meshca/meshca/internal/compliance"
	"github.com/meshca/meshca/trustbundle"
)

// wiring is build's state: what every step reads (the configuration, logger and registry) and what the earlier
// steps made for the later ones. Each step wires one section of the configuration.
type wiring struct {
	a          *app
	cfg        *Config
	log        *slog.Logger
	reg        *prometheus.Registry
	extraAuthn []authn.Authenticator // tried before the configured token issuers (dev mode)

	tls            compliance.Policy
	handshakes     *compliance.Handshakes
	restCfg        *rest.Config         // nil when no part talks to the API server
	client         kubernetes.Interface // likewise
	named          []ca.NamedBackend
	crl            func(context.Context) ([]byte, error) // the CRL /crl serves: the first backend's own
	rv             *revocation                           // nil when revocation is off
	kubeAuth       kube.Auth
	chain          authn.Chain
	publishedRoots func(context.Context) ([]*x509.Certificate, error) // the rotation's roots in the published bundles
}

// useCompliancePolicy resolves compliancePolicy and hands it to every TLS endpoint and client.
func (w *wiring) useCompliancePolicy(ctx context.Context) (err error) {
	w.tls, w.handshakes, err = tlsPolicy(ctx, w.cfg, w.log, w.reg, os.Getenv)
	return err
}

// connectKubernetes builds the API-server client (kubernetes.kubeconfig, its rate limits and the TLS policy)
// when any configured part needs one.
func (w *wiring) connectKubernetes(context.Context) error {
	if !w.cfg.needsKube() {
		return nil
	}
	kc := w.cfg.Kubernetes
	kubeconfig := ""
	if kc != nil {
		kubeconfig = kc.Kubeconfig
	}
	restCfg, err := kube.LoadRESTConfig(kubeconfig)
	if err != nil {
		return err
	}
	if kc != nil {
		kc.Limit(restCfg)
	}
	if err := restWithPolicy(restCfg, w.tls); err != nil {
		return err
	}
	if w.client, err = kubernetes.NewForConfig(restCfg); err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	w.restCfg = restCfg
	return nil
}

// startBackends starts the signing backends (backends section).
func (w *wiring) startBackends(ctx context.Context) (err error) {
	w.named, w.crl, err = w.a.backends(ctx, w.cfg, w.log, w.reg, w.client)
	return err
}

// startCRL starts revocation (crl section); without one it is off.
func (w *wiring) startCRL(ctx context.Context) (err error) {
	w.rv, err = w.a.startRevocation(ctx, w.cfg, w.named, w.log, w.reg, w.restCfg, w.client)
	return err
}

// authenticate builds the authenticator chain: the token issuers and client certificates (authn section) and,
// with a kubernetes section, TokenReview, remote clusters and node impersonation.
func (w *wiring) authenticate(ctx context.Context) error {
	cfg := w.cfg
	localCluster := ""
	if cfg.Kubernetes != nil {
		localCluster = cfg.Kubernetes.ClusterID
		ka, err := kube.New(ctx, *cfg.Kubernetes, kube.Deps{Client: w.client, Registerer: w.reg, Logger: w.log,
			MaxTokenLifetime: cfg.Authn.MaxTokenLifetime, TLSPolicy: w.tls})
		if err != nil {
			return err
		}
		w.kubeAuth = *ka
	}
	// Client certificates are checked against the issuer's roots, and the issuer needs the chain: the closures
	// reach the issuer, which issue sets before the server starts and anything authenticates.
	chain, err := authn.New(cfg.Authn, authn.Deps{First: w.extraAuthn, Then: w.kubeAuth.Authenticators,
		Combine:     w.kubeAuth.Combine,
		Roots:       func(ctx context.Context) ([]*x509.Certificate, error) { return w.a.issuer.Roots(ctx) },
		IssuingCAs:  func(ctx context.Context) ([]*x509.Certificate, error) { return w.a.issuer.IssuingCAs(ctx) },
		MaxLifetime: cfg.Issuance.EffectiveMaxTTL(), LocalClusterID: localCluster, Registerer: w.reg,
		TrustDomains: append([]string{cfg.Issuance.TrustDomain}, cfg.Issuance.TrustDomainAliases...),
		Logger:       w.log, Revocation: w.rv.renewalCheck(), TLSPolicy: w.tls})
	w.chain = chain
	return err
}

// issue builds the issuance core: issuance, policy, limits and signTimeout, with the expiry tracker (expiry
// section) and the rotation controller (rotation section) observing it.
func (w *wiring) issue(ctx context.Context) error {
	cfg := w.cfg
	trackerCfg := cfg.Expiry.TrackerConfig
	trackerCfg.Registerer = w.reg
	tracker, err := expiry.NewTracker(trackerCfg)
	if err != nil {
		return err
	}
	rot, err := w.a.rotation(cfg, tracker, w.client, w.log, w.reg)
	if err != nil {
		return err
	}
	w.publishedRoots = rot.published
	nsLabels, err := w.a.namespaceLabels(ctx, cfg, w.client, w.log)
	if err != nil {
		return err
	}
	issuer, err := ca.New(ca.Config{Backends: w.named, Authenticator: w.chain,
		Impersonator: w.kubeAuth.Impersonator, Policy: cfg.Issuance, Rules: cfg.Policy, NamespaceLabels: nsLabels,
		Limits: cfg.Limits, SignTimeout: cfg.SignTimeout, Logger: w.log, Audit: w.log.With("log", "audit"),
		Registerer: w.reg, Observer: rot.observer, ExtraRoots: rot.extra, Revocations: w.rv.gate(),
		WithdrawnRoots: rot.withdrawn, LifetimeCap: rot.cap})
	if err != nil {
		return err
	}
	w.a.issuer = issuer
	w.rv.explainWith(issuer)
	return nil
}

// watchPolicyFile re-reads policyFile when it changes.
func (w *wiring) watchPolicyFile(context.Context) error {
	if w.cfg.PolicyFile == "" {
		return nil
	}
	r, err := newPolicyReloader(w.cfg.PolicyFile, w.a.issuer, w.log, w.reg)
	if err != nil {
		return err
	}
	w.a.run = append(w.a.run, r.Run)
	return nil
}

// publishTrustBundle starts the trust bundle publisher (trustBundle section).
func (w *wiring) publishTrustBundle(context.Context) error {
	if w.cfg.TrustBundle == nil {
		return nil
	}
	tc := *w.cfg.TrustBundle
	tc.Kube, tc.Logger, tc.Registerer = w.restCfg, w.log.With("component", "trustbundle"), w.reg
	tc.Source = withExtraRoots(w.a.issuer, w.publishedRoots)
	tc.PostQuantumSource = trustbundle.SourceFunc(w.a.issuer.PostQuantumRoots)
	tc.CompositeSource = trustbundle.SourceFunc(w.a.issuer.CompositeRoots)
	pub, err := trustbundle.New(tc)
	if err != nil {
		return err
	}
	w.a.run = append(w.a.run, pub.Run)
	return nil
}

// signKubernetesCSRs starts the Kubernetes CSR signer (k8sSigner section).
func (w *wiring) signKubernetesCSRs(context.Context) error {
	return w.a.k8sSigner(w.cfg, w.restCfg, w.a.issuer, w.log, w.reg)
}

// serve builds the server (server section) and the expiry scanner that watches its certificate (expiry.scan).
func (w *wiring) serve(context.Context) error {
	scfg := w.cfg.Server
	scfg.Logger, scfg.Gatherer, scfg.CRL = w.log, w.reg, w.crl
	w.rv.serve(&scfg)
	scfg.TLSPolicy, scfg.Handshakes = w.tls, w.handshakes
	scfg.Pages = w.a.pages
	srv, err := server.New(w.a.issuer, scfg)
	if err != nil {
		return err
	}
	w.a.server = srv
	return w.a.startExpiry(w.cfg, w.log, w.reg, w.client, srv)
}
