package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/server"
	"github.com/meshca/meshca/crl"
	"github.com/meshca/meshca/crl/kubepublish"
	"github.com/meshca/meshca/crl/kubestore"
)

// CRLConfig is the crl: section: revocation, the CRLs meshca publishes and where (docs/revocation.md). Its
// presence turns revocation on; serve --dev always has it.
type CRLConfig struct {
	// RegistryConfig tunes the CRLs meshca signs and the inventory: crlLifetime, refreshAfter, backdate,
	// flushInterval, maxInventory, maxPending, markRetention, unknownExpiry.
	crl.RegistryConfig
	// StateFile keeps the revocation state of a single instance (write, fsync, rename). Put it on a persistent
	// volume. Exactly one of stateFile and secret is set.
	StateFile string `json:"stateFile,omitempty"`
	// Secret keeps the state in a Kubernetes Secret that every replica shares (default name
	// meshca-revocations); namespace is meshca's own.
	Secret *kubestore.Config `json:"secret,omitempty"`
	// Files are PEM files holding CRLs of CAs meshca holds no key for (an offline root above a Vault or
	// step-ca intermediate). The file backend's cacerts ca-crl.pem is read without being listed here.
	Files []string `json:"files,omitempty"`
	// Interval is how often chains, backend CRLs and files are re-read. Default 10s.
	Interval time.Duration `json:"interval,omitempty"`
	// FailClosed publishes an incomplete CRL set (Envoy then refuses every certificate under the uncovered CA)
	// instead of an empty ca-crl.pem.
	FailClosed bool `json:"failClosed,omitempty"`
	// RenewalFailOpen lets a client certificate renew when its revocation status is unknown (a CA of its chain
	// without a current CRL). By default such a renewal is refused (Unavailable); a revoked one always is.
	RenewalFailOpen bool `json:"renewalFailOpen,omitempty"`
	// OutputDir, when set, is a directory where ca-crl.pem is kept equal to what /crl.pem and the ConfigMaps
	// publish (written to a temporary file, fsynced, renamed), for a volume mounted into istiod's cacerts or a
	// sidecar. The directory must exist.
	OutputDir string `json:"outputDir,omitempty"`
	// ConfigMaps, when set, writes ca-crl.pem to the istio-ca-crl ConfigMap of every selected namespace.
	ConfigMaps *kubepublish.Config `json:"configMaps,omitempty"`
	// Admin is the revocation admin API (meshca revoke, meshca crl --admin).
	Admin AdminConfig `json:"admin,omitempty"`
}

// Validate reports every problem with c at once, naming the keys under crl.
func (c *CRLConfig) Validate() error {
	var errs []error
	if err := c.RegistryConfig.Validate(); err != nil {
		errs = append(errs, inSection(err, "crl", "crl"))
	}
	switch {
	case c.StateFile == "" && c.Secret == nil:
		errs = append(errs, errors.New("crl: set stateFile (one instance, on a persistent volume) or secret "+
			"(replicas in a cluster) to keep the revocation state"))
	case c.StateFile != "" && c.Secret != nil:
		errs = append(errs, errors.New("crl: set only one of stateFile and secret"))
	case c.Secret != nil:
		if err := c.Secret.Validate(); err != nil {
			errs = append(errs, inSection(err, "kubestore", "crl.secret"))
		}
	}
	pc := crl.PublisherConfig{Files: c.Files, Interval: c.Interval}
	if err := pc.Validate(); err != nil {
		errs = append(errs, inSection(err, "crl", "crl"))
	}
	if c.ConfigMaps != nil {
		if err := c.ConfigMaps.Validate(); err != nil {
			errs = append(errs, inSection(err, "kubepublish", "crl.configMaps"))
		}
	}
	if err := c.Admin.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c *CRLConfig) needsKube() bool { return c != nil && (c.Secret != nil || c.ConfigMaps != nil) }

// revocation is meshca's revocation wired from the crl: section: the registry (state, inventory, quarantines,
// meshca's own CRLs), the publisher (one current CRL per CA of the served chains) and what reads them.
type revocation struct {
	reg      *crl.Registry
	pub      *crl.Publisher
	issuing  func(context.Context) (*x509.Certificate, error) // the first backend's issuing CA: /crl serves its CRL
	owners   []owner                                          // backends that own revocation of their CA
	failOpen bool
	m        *crl.Metrics
	log      *slog.Logger
	issuer   *ca.Issuer // set by explainWith before the admin listener starts; nil offline
}

// owner is a backend that revokes and publishes its own certificates' revocations (Vault, step-ca).
type owner struct {
	name    string
	chain   func(context.Context) ([]*x509.Certificate, error)
	revoker backends.Revoker
}

var _ ca.Revocations = (*revocation)(nil)

// startRevocation builds the registry and publisher for named, assembles the first CRL set, and adds their
// loops (and the istio-ca-crl writer) to a.run. It returns nil when cfg has no crl: section.
func (a *app) startRevocation(ctx context.Context, cfg *Config, named []ca.NamedBackend, log *slog.Logger,
	reg prometheus.Registerer, restCfg *rest.Config, client kubernetes.Interface) (*revocation, error) {
	cc := cfg.CRL
	if cc == nil {
		log.Warn("revocation is off: the configuration has no crl: section (docs/revocation.md)")
		return nil, nil
	}
	log = log.With("component", "crl")
	m, err := crl.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	store, err := a.crlStore(ctx, cc, log, client)
	if err != nil {
		return nil, err
	}
	rc := cc.RegistryConfig
	rc.Store, rc.Logger, rc.Metrics = store, log, m
	registry, err := crl.NewRegistry(ctx, rc)
	if err != nil {
		return nil, fmt.Errorf("crl: %w", err)
	}
	rv := &revocation{reg: registry, failOpen: cc.RenewalFailOpen, log: log, m: m}
	pc := crl.PublisherConfig{Registry: registry, Files: cc.Files, Interval: cc.Interval, FailClosed: cc.FailClosed,
		Logger: log, Metrics: m}
	if err := rv.addAuthorities(&pc, named); err != nil {
		return nil, err
	}
	if rv.pub, err = crl.NewPublisher(pc); err != nil {
		return nil, err
	}
	if rep := rv.pub.Refresh(ctx); !rep.Complete {
		log.Warn("not every CA of the served chains has a current CRL; ca-crl.pem stays incomplete until it "+
			"has (see docs/revocation.md, \"Offline root\")", "error", rep.Err)
	}
	a.run = append(a.run, registry.Run, rv.pub.Run)
	if cc.OutputDir != "" {
		out, err := crl.NewDirOutput(crl.DirOutputConfig{Dir: cc.OutputDir, Source: rv.pub, Logger: log, Metrics: m})
		if err != nil {
			return nil, err
		}
		a.run = append(a.run, out.Run)
	}
	var tok string
	if !cc.Admin.Disabled {
		if tok, err = a.loopbackAdmin(cfg, log); err != nil {
			return nil, err
		}
	}
	a.run = append(a.run, rv.serveAdmin(cc.Admin, tok, log)...)
	return rv, a.publishCRLConfigMaps(cc, rv, restCfg, log, reg, m)
}

// addAuthorities adds to pc a CRL authority for each backend of named (its chain, and its CRL signer or
// source), the cacerts bundles of file backends, and notes in rv who revokes and which CA issues.
func (rv *revocation) addAuthorities(pc *crl.PublisherConfig, named []ca.NamedBackend) error {
	for _, nb := range named {
		auth := crl.Authority{Name: nb.Name}
		chainer, ok := nb.Backend.(backends.Chainer)
		if !ok {
			return fmt.Errorf("crl: backend %s cannot tell its CA chain, so its CRLs cannot be published", nb.Name)
		}
		auth.Chain = chainer.CAChain
		if s, ok := nb.Backend.(backends.CRLSigner); ok {
			auth.Signer = s
		} else if src, ok := nb.Backend.(backends.CRLSource); ok {
			auth.Source = src
			if rk, ok := nb.Backend.(backends.Revoker); ok {
				rv.owners = append(rv.owners, owner{name: nb.Name, chain: chainer.CAChain, revoker: rk})
			}
		}
		if fb, ok := nb.Backend.(*file.Backend); ok {
			pc.Bundles = append(pc.Bundles, crl.Bundle{Name: "cacerts " + nb.Name, Read: fb.CRLBundle})
		}
		if rv.issuing == nil {
			rv.issuing = func(ctx context.Context) (*x509.Certificate, error) {
				chain, err := chainer.CAChain(ctx)
				if err != nil || len(chain) == 0 {
					return nil, fmt.Errorf("the CA chain of backend %s: %v", nb.Name, err)
				}
				return chain[0], nil
			}
		}
		pc.Authorities = append(pc.Authorities, auth)
	}
	return nil
}

// publishCRLConfigMaps starts the istio-ca-crl ConfigMap writer (crl.configMaps) when it is configured.
func (a *app) publishCRLConfigMaps(cc *CRLConfig, rv *revocation, restCfg *rest.Config, log *slog.Logger,
	reg prometheus.Registerer, m *crl.Metrics) error {
	if cc.ConfigMaps == nil {
		return nil
	}
	kc := *cc.ConfigMaps
	kc.Kube, kc.Source, kc.Logger, kc.Registerer, kc.Metrics = restCfg, rv.pub, log, reg, m
	kp, err := kubepublish.New(kc)
	if err != nil {
		return err
	}
	a.run = append(a.run, kp.Run)
	return nil
}

// crlStore opens the configured store and registers its Close.
func (a *app) crlStore(ctx context.Context, cc *CRLConfig, log *slog.Logger, client kubernetes.Interface) (crl.Store,
	error) {
	if cc.Secret != nil {
		sc := *cc.Secret
		sc.Kube, sc.Logger = client, log
		s, err := kubestore.New(ctx, sc)
		if err != nil {
			return nil, fmt.Errorf("crl.secret: %w", err)
		}
		a.closers = append(a.closers, s.Close)
		return s, nil
	}
	s, err := crl.OpenFile(cc.StateFile)
	if err != nil {
		return nil, fmt.Errorf("crl.stateFile: %w", err)
	}
	a.closers = append(a.closers, s.Close)
	return s, nil
}

// Quarantined implements ca.Revocations.
func (r *revocation) Quarantined(identity string, now time.Time) (time.Time, bool) {
	return r.reg.Quarantined(identity, now)
}

// Issued implements ca.Revocations: it records the leaf in the inventory under its issuing CA (chain[1]).
func (r *revocation) Issued(identity string, chain []*x509.Certificate, decidedAt time.Time) {
	if len(chain) < 2 {
		return
	}
	leaf := chain[0]
	if err := r.reg.Record(crl.Issuance{Serial: leaf.SerialNumber, Identity: identity, CA: crl.IDOf(chain[1]),
		NotAfter: leaf.NotAfter, IssuedAt: decidedAt}); err != nil {
		r.log.Warn("issued certificate not recorded in the inventory", "serial", leaf.SerialNumber.Text(16),
			"error", err)
	}
}

// checkRenewal is authn's revocation check of a renewal certificate's verified chain.
func (r *revocation) checkRenewal(_ context.Context, chain []*x509.Certificate) error {
	err := r.pub.CheckChain(chain)
	switch {
	case err == nil:
		r.m.RenewalCheck(crl.RenewalGood)
		return nil
	case errors.Is(err, crl.ErrRevoked):
		r.m.RenewalCheck(crl.RenewalRevoked)
		return err
	case r.failOpen:
		r.m.RenewalCheck(crl.RenewalUnknownAllowed)
		r.log.Warn("client certificate renews with unknown revocation status (crl.renewalFailOpen)", "error", err)
		return nil
	}
	r.m.RenewalCheck(crl.RenewalUnknownRefused)
	return fmt.Errorf("%w: %w (crl.renewalFailOpen: true accepts such renewals)", authn.ErrUnavailable, err)
}

// der returns the current CRL of the first backend's issuing CA, for /crl.
func (r *revocation) der(ctx context.Context) ([]byte, error) {
	ca, err := r.issuing(ctx)
	if err != nil {
		return nil, err
	}
	if der, ok := r.pub.DER(crl.IDOf(ca)); ok {
		return der, nil
	}
	return nil, fmt.Errorf("%w: no current CRL of %s: %v", server.ErrCRLNotCurrent, ca.Subject,
		coverageErr(r.pub.Report(), crl.IDOf(ca)))
}

// pem returns ca-crl.pem, for /crl.pem, but only while every CA has a current CRL: an incomplete or stale set
// is refused (503) rather than served as if it were good.
func (r *revocation) pem(context.Context) ([]byte, error) {
	rep := r.pub.Report()
	if !rep.Complete {
		return nil, fmt.Errorf("%w: %v", server.ErrCRLNotCurrent, rep.Err)
	}
	b, _ := r.pub.PEM()
	return b, nil
}

func coverageErr(rep crl.Report, id crl.CAID) error {
	for _, c := range rep.Coverage {
		if c.ID == id {
			return c.Err
		}
	}
	return rep.Err
}

// renewalCheck returns authn's revocation check, nil when revocation is off.
func (r *revocation) renewalCheck() func(context.Context, []*x509.Certificate) error {
	if r == nil {
		return nil
	}
	return r.checkRenewal
}

// gate returns the issuer's view of revocation, nil when revocation is off.
func (r *revocation) gate() ca.Revocations {
	if r == nil {
		return nil
	}
	return r
}

// serve points /crl and /crl.pem at the publisher; with revocation off they keep the backend's own CRL.
func (r *revocation) serve(c *server.Config) {
	if r != nil {
		c.CRL, c.CRLPEM = r.der, r.pem
	}
}

// devCRL is serve --dev's crl: section: the state in dir, the intermediate's CRL signed by meshca, the root's
// from the ca-crl.pem that meshca init writes.
func devCRL(dir string) *CRLConfig {
	return &CRLConfig{StateFile: filepath.Join(dir, "revocations.json")}
}
