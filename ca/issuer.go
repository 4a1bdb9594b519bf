package ca

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/policy"
	"github.com/meshca/meshca/csr"
)

// DefaultSignTimeout bounds each backend call when Config.SignTimeout is zero.
const DefaultSignTimeout = 10 * time.Second

// NamedBackend is a configured backend and the name it has in metrics, logs and audit records.
type NamedBackend struct {
	Name    string
	Backend backends.Backend
}

// Config configures an Issuer.
type Config struct {
	// Backends sign, in order of preference: the next one is used only when the previous is unavailable.
	Backends []NamedBackend
	// Authenticator proves who is calling.
	Authenticator authn.Authenticator
	// Impersonator, when set, lets node agents request other workloads' identities.
	Impersonator authn.Impersonator
	Policy       Policy
	// Rules are the per-namespace policy rules over Policy (package policy); the zero value has none, and
	// Policy decides every request.
	Rules policy.Config
	// NamespaceLabels, when set, returns the labels of a Namespace for rules with a namespace selector
	// (false when unknown). It is called on the request path: it must be cheap (an informer's cache).
	NamespaceLabels func(namespace string) (map[string]string, bool)
	// Limits protect meshca from floods; the zero value is the defaults.
	Limits Limits
	// SignTimeout bounds each backend call. Default 10s.
	SignTimeout time.Duration
	// Clock returns the current time; default time.Now.
	Clock func() time.Time
	// Logger receives operational logs; Audit receives one record per request. Defaults: slog.Default().
	Logger, Audit *slog.Logger
	// Registerer receives the metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
	// Observer, when set, is told of every workload certificate issued (e.g. expiry.Tracker, for the
	// per-identity expiry gauges and the stuck-agent signal). It is called on the request path: it must be
	// cheap and must not block.
	Observer IssuanceObserver
	// Revocations, when set, refuses quarantined identities and records every issuance in the inventory.
	Revocations Revocations
	// ExtraRoots, when set, returns trust anchors that workloads should trust beside the backends' roots
	// (a federated mesh's root, the next root of a rotation). They join the trust bundle in every response;
	// they do not authenticate anything at meshca.
	ExtraRoots func(context.Context) ([]*x509.Certificate, error)
	// WithdrawnRoots, when set, returns roots to leave out of every response's trust bundle although a backend
	// still lists them (the old root while a rotation retires it). It is called on the request path.
	WithdrawnRoots func() []*x509.Certificate
	// LifetimeCap, when set, returns a lifetime no workload certificate may exceed, 0 for none (a rotation
	// lowers it so that its later phases wait for short-lived leaves only). It is called on the request path.
	LifetimeCap func() time.Duration
}

// IssuanceObserver is told of every workload certificate issued.
type IssuanceObserver interface {
	Observe(id csr.Identity, notBefore, notAfter time.Time)
}

// ResultObserver is an IssuanceObserver that is also given every Result, after Observe: the chain and the
// trust bundle the workload receives (package rotation records which workloads hold a rotation's next root).
// It must not modify or keep the Result.
type ResultObserver interface {
	ObserveResult(res *Result)
}

// Issuer is meshca's issuance core. It is safe for concurrent use.
type Issuer struct {
	backends []NamedBackend
	authn    authn.Authenticator
	imp      authn.Impersonator
	policy   Policy
	timeout  time.Duration
	clock    func() time.Time
	log      *slog.Logger
	audit    *slog.Logger
	m        *metrics
	chains   chainCache
	bundle   trustBundle
	limits   *limiter
	observer IssuanceObserver
	rules    atomic.Pointer[policy.Engine]
	nsLabels func(string) (map[string]string, bool)

	revocations Revocations
	extraRoots  func(context.Context) ([]*x509.Certificate, error)
	withdrawn   func() []*x509.Certificate
	lifetimeCap func() time.Duration
}

// New returns an Issuer for cfg.
func New(cfg Config) (*Issuer, error) {
	var errs []error
	if len(cfg.Backends) == 0 {
		errs = append(errs, errors.New("ca: at least one backend is required"))
	}
	names := map[string]bool{}
	for _, b := range cfg.Backends {
		if b.Name == "" || b.Backend == nil || names[b.Name] {
			errs = append(errs, fmt.Errorf("ca: every backend needs a unique name and an implementation (%q)", b.Name))
		}
		names[b.Name] = true
	}
	if cfg.Authenticator == nil {
		errs = append(errs, errors.New("ca: an authenticator is required"))
	}
	if err := cfg.Policy.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := cfg.Limits.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	engine, err := CompileRules(cfg.Policy, cfg.Rules, backendNames(cfg.Backends))
	if err != nil {
		return nil, err
	}
	i := &Issuer{backends: cfg.Backends, authn: cfg.Authenticator, imp: cfg.Impersonator,
		policy: cfg.Policy.withDefaults(), timeout: cfg.SignTimeout, clock: cfg.Clock, log: cfg.Logger,
		audit:  cfg.Audit,
		bundle: trustBundle{last: map[string][]*x509.Certificate{}}, extraRoots: cfg.ExtraRoots,
		observer: cfg.Observer, nsLabels: cfg.NamespaceLabels, revocations: cfg.Revocations,
		withdrawn: cfg.WithdrawnRoots, lifetimeCap: cfg.LifetimeCap}
	i.rules.Store(engine)
	if i.timeout == 0 {
		i.timeout = DefaultSignTimeout
	}
	if i.clock == nil {
		i.clock = time.Now
	}
	i.limits = newLimiter(cfg.Limits, i.clock)
	if i.log == nil {
		i.log = slog.Default()
	}
	if i.audit == nil {
		i.audit = i.log
	}
	m, err := newMetrics(cfg.Registerer, i, engine.RuleNames())
	if err != nil {
		return nil, err
	}
	i.m = m
	return i, nil
}

// Request is one certificate request as received from a caller.
type Request struct {
	// Credentials prove who is calling.
	Credentials authn.Request
	// CSR is the PEM certificate request.
	CSR []byte
	// TTL is the requested lifetime; 0 asks for the default.
	TTL time.Duration
	// ImpersonatedIdentity, when set, is the SPIFFE ID a node agent asks for on behalf of a workload.
	ImpersonatedIdentity string
	// Metadata holds the request's other metadata keys (e.g. CertSigner). meshca honours what it can and
	// refuses the rest: nothing a caller asks for is silently ignored.
	Metadata map[string]string
	// DecodeErr is a problem the facade found while decoding the request (e.g. a metadata value that is not a
	// string). The request is refused with it, counted and audited like every other refusal.
	DecodeErr error
	// Peer is the caller's network address, for the audit record.
	Peer string
}

// Result is an issued certificate.
type Result struct {
	// Chain is leaf first, root last.
	Chain []*x509.Certificate
	// TrustBundle is the workload trust bundle at the time of issuance (see Issuer.TrustBundle), PEM.
	TrustBundle []byte
	Identity    csr.Identity
	Backend     string
	// Caller is the workload that asked, as authenticated (with the pod claims of a bound token); nil when a
	// registration authority asked on a workload's behalf. Impersonated says the caller is a node agent
	// (ztunnel) that asked for Identity with ImpersonatedIdentity.
	Caller       *authn.Caller
	Impersonated bool
}

// Issue takes req through authentication, CSR checks, policy and signing. Errors wrap the sentinels of this
// package and of authn, csr and backends; ca/server maps them to gRPC status codes.
func (i *Issuer) Issue(ctx context.Context, req *Request) (*Result, error) {
	start := time.Now()
	rec := auditRecord{peer: req.Peer, clusterID: req.Credentials.ClusterID}
	res, err := i.issue(ctx, req, &rec)
	i.account(ctx, &rec, start, err)
	return res, err
}

// account counts a finished request in the metrics and writes its audit record: the one place every outcome
// of Issue and IssueDelegated is classified.
func (i *Issuer) account(ctx context.Context, rec *auditRecord, start time.Time, err error) {
	elapsed := time.Since(start)
	class := Classify(err)
	i.m.record(class, elapsed)
	rec.log(ctx, i.audit, class, err, elapsed)
}

func (i *Issuer) issue(ctx context.Context, req *Request, rec *auditRecord) (*Result, error) {
	if err := i.limits.acquire(); err != nil {
		return nil, err
	}
	defer i.limits.release()
	if err := i.limits.checkSource(req.Peer); err != nil {
		return nil, err
	}
	caller, err := i.authn.Authenticate(ctx, &req.Credentials)
	if err != nil {
		if errors.Is(err, authn.ErrUnauthenticated) {
			i.limits.failed(req.Peer)
		}
		return nil, err
	}
	rec.caller, rec.workload, rec.impersonated = caller, true, req.ImpersonatedIdentity != ""
	if err := checkMetadata(req); err != nil {
		return nil, err
	}
	target, err := i.policy.IdentityOf(caller)
	if err != nil {
		return nil, err
	}
	if req.ImpersonatedIdentity != "" {
		if target, err = i.impersonate(ctx, caller, req.ImpersonatedIdentity); err != nil {
			return nil, err
		}
	}
	rec.identity = target.String()
	if err := i.limits.allow(callerKey(caller, target, req.ImpersonatedIdentity != "")); err != nil {
		return nil, err
	}
	parsed, err := csr.ParseWith(req.CSR, csr.Options{MLDSA: i.policy.MLDSA, Composite: i.policy.ExperimentalComposite})
	if err != nil {
		return nil, err
	}
	return i.issueTo(ctx, target, parsed, req.TTL, req.Metadata["CertSigner"], nil, rec)
}

// issueTo is the part of every workload issuance after the identity is settled, whoever settled it (the
// caller's credential, a node agent's impersonation, or a registration authority): a quarantined identity is
// refused, the CSR must ask for exactly target within policy (certSigner is the CertSigner metadata), then
// the backends sign (the deciding rule's, in its failover order, narrowed to those named in only when only is
// not empty) and the issuance is recorded.
func (i *Issuer) issueTo(ctx context.Context, target csr.Identity, parsed *csr.Request, ttl time.Duration,
	certSigner string, only []string, rec *auditRecord) (*Result, error) {
	decidedAt := i.clock()
	if err := i.checkQuarantine(target, decidedAt); err != nil {
		return nil, err
	}
	rec.keyType = parsed.KeyType
	grant, err := i.authorize(target, parsed, ttl, certSigner, rec)
	if err != nil {
		return nil, err
	}
	i.capLifetime(grant)
	if grant.Adjusted != "" {
		i.m.ttlAdjusted.WithLabelValues(grant.Adjusted).Inc()
		i.log.Info("requested certificate lifetime adjusted by policy", "identity", target.String(),
			"requested", ttl, "granted", grant.TTL, "how", grant.Adjusted, "rule", grant.Rule)
	}
	sreq := &backends.SignRequest{CSR: parsed.CSR, PublicKey: parsed.PublicKey, URIs: []*url.URL{target.URI()},
		DNSNames: grant.DNSNames, TTL: grant.TTL}
	if i.policy.CommonName && len(target.String()) <= 64 {
		sreq.Subject = pkix.Name{CommonName: target.String()}
	}
	chosen, err := i.within(grant, only)
	if err != nil {
		return nil, err
	}
	if err := checkCompositeCA(ctx, chosen, parsed); err != nil {
		return nil, err
	}
	resp, name, err := i.sign(ctx, chosen, sreq)
	if err != nil {
		return nil, err
	}
	bundle, err := i.bundleFor(ctx, resp.Leaf())
	if err != nil {
		return nil, err
	}
	leaf := resp.Leaf()
	rec.backend, rec.serial, rec.notAfter = name, leaf.SerialNumber.Text(16), leaf.NotAfter
	i.m.issued.WithLabelValues(name, parsed.KeyType).Inc()
	res := &Result{Chain: resp.Chain, TrustBundle: bundle, Identity: target, Backend: name,
		Impersonated: rec.impersonated}
	if rec.workload {
		res.Caller = rec.caller
	}
	if i.observer != nil {
		i.observer.Observe(target, leaf.NotBefore, leaf.NotAfter)
		if ro, ok := i.observer.(ResultObserver); ok {
			ro.ObserveResult(res)
		}
	}
	if i.revocations != nil {
		i.revocations.Issued(target.String(), resp.Chain, decidedAt)
	}
	return res, nil
}

// checkMetadata refuses what the request's metadata asks for and meshca does not do.
func checkMetadata(req *Request) error {
	if req.DecodeErr != nil {
		return fmt.Errorf("%w: %w", ErrInvalidRequest, req.DecodeErr)
	}
	for k := range req.Metadata {
		if k == "CertSigner" {
			continue // routed (or refused as unknown) by policy; Istio's CA client always sends it, often empty
		}
		return fmt.Errorf("%w: metadata key %.64q is not supported; meshca understands ImpersonatedIdentity "+
			"and CertSigner", ErrInvalidRequest, k)
	}
	return nil
}

func (i *Issuer) impersonate(ctx context.Context, caller *authn.Caller, want string) (csr.Identity, error) {
	target, err := csr.ParseID(want)
	if err != nil {
		return csr.Identity{}, fmt.Errorf("%w: ImpersonatedIdentity: %v", ErrInvalidRequest, err)
	}
	canon, ok := i.policy.Mesh().Canonical(target)
	if !ok {
		return csr.Identity{}, fmt.Errorf("%w: %w: trust domain %q is not this mesh's", ErrPermissionDenied,
			authn.ErrImpersonationDenied, target.TrustDomain)
	}
	target = canon
	if i.imp == nil {
		return csr.Identity{}, fmt.Errorf("%w: %w: impersonation (ImpersonatedIdentity) is not enabled on this CA",
			ErrPermissionDenied, authn.ErrImpersonationDenied)
	}
	if err := i.imp.CheckImpersonation(ctx, caller, target); err != nil {
		if errors.Is(err, authn.ErrImpersonationDenied) && !errors.Is(err, ErrPermissionDenied) {
			err = fmt.Errorf("%w: %w", ErrPermissionDenied, err)
		}
		return csr.Identity{}, err
	}
	return target, nil
}

// Check reports whether at least one backend is ready to sign.
func (i *Issuer) Check(ctx context.Context) error {
	var errs []error
	for _, b := range i.backends {
		c, ok := b.Backend.(backends.Checker)
		if !ok {
			return nil
		}
		err := c.Check(ctx)
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("backend %s: %w", b.Name, err))
	}
	return errors.Join(errs...)
}

// MaxTTL is the longest lifetime this CA issues (issuance.maxTTL).
func (i *Issuer) MaxTTL() time.Duration { return i.policy.EffectiveMaxTTL() }

// Backends returns the configured backends in order.
func (i *Issuer) Backends() []NamedBackend { return slices.Clone(i.backends) }

// TrustDomains returns the mesh's trust domain followed by its aliases.
func (i *Issuer) TrustDomains() []string {
	return append([]string{i.policy.TrustDomain}, i.policy.TrustDomainAliases...)
}

// Mesh returns the mesh's trust domain and aliases, which decide every identity this CA issues.
func (i *Issuer) Mesh() csr.Mesh { return i.policy.Mesh() }

// TrustDomain returns the mesh's trust domain.
func (i *Issuer) TrustDomain() string { return i.policy.TrustDomain }
