package crl

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Authority is one issuing CA that meshca serves, as a backend exposes it.
type Authority struct {
	// Name labels the authority in logs and CRL origins (the backend's name).
	Name string
	// Chain returns the CA chain, issuing CA first, root last (backends.Chainer.CAChain). Every CA in it needs
	// a CRL.
	Chain func(ctx context.Context) ([]*x509.Certificate, error)
	// Signer, when meshca holds the issuing CA's key (backends.CRLSigner), signs the CRLs the Registry builds
	// for Chain's first certificate.
	Signer Signer
	// Source, when the backend owns revocation (backends.CRLSource), returns the issuing CA's CRL.
	Source Source
}

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// Authorities are the issuing CAs served. Required.
	Authorities []Authority `json:"-"`
	// Registry builds the CRLs of authorities with a Signer; required when one has.
	Registry *Registry `json:"-"`
	// Files are PEM files holding the CRLs of the CAs meshca has no key for (an offline root, an intermediate
	// above the issuing CA), e.g. the cacerts ca-crl.pem; each may hold several CRLs. They are re-read every
	// Interval. A file that cannot be read or parsed keeps its previous CRLs in use; a blank file holds none.
	// A CRL in a file for a CA that meshca signs for is ignored: meshca's own CRL of that CA wins.
	Files []string `json:"files,omitempty"`
	// Bundles are other sources of ca-crl.pem content with the same rules as Files, for CRLs that are not in
	// a file (the ca-crl.pem key of a cacerts Secret read through the API server).
	Bundles []Bundle `json:"-"`
	// Interval is how often chains, backend CRLs and files are re-read and CRLs re-issued when due. Default
	// 10s. A revocation through the Registry is published at once.
	Interval time.Duration `json:"interval,omitempty"`
	// FailClosed publishes the CRLs it has even when some CA of the served chains has no valid CRL. Envoy then
	// refuses every certificate under that CA (CRL_CHECK_ALL): an outage instead of unchecked revocation. By
	// default an incomplete set is not published, and ca-crl.pem is empty (no revocation checking) until it
	// is complete again; meshca_crl_coverage_complete is 0 meanwhile.
	FailClosed bool `json:"failClosed,omitempty"`

	// Clock returns the current time; default time.Now.
	Clock func() time.Time `json:"-"`
	// Logger receives coverage changes and errors; default slog.Default().
	Logger *slog.Logger `json:"-"`
	// Metrics receives the CRL gauges; default unregistered metrics.
	Metrics *Metrics `json:"-"`
}

// Bundle is a named source of ca-crl.pem content: zero or more PEM CRLs.
type Bundle struct {
	// Name identifies it in logs and CRL origins.
	Name string
	// Read returns the current content; an error keeps the last good CRLs in use.
	Read func(ctx context.Context) ([]byte, error)
}

// Validate reports every problem with c that a configuration file can cause. It has no side effects.
func (c *PublisherConfig) Validate() error {
	var errs []error
	if c.Interval < 0 {
		errs = append(errs, errors.New("crl: interval must not be negative"))
	}
	for _, f := range c.Files {
		if f == "" {
			errs = append(errs, errors.New("crl: files holds an empty path"))
		}
	}
	return errors.Join(errs...)
}

// Publisher keeps one current CRL for every CA of the served chains: built and signed by meshca for the CAs
// it holds keys of, taken from the backend when it owns revocation, read from files for the others. It checks
// the set as Envoy will (Check) and serves it as DER per CA and as the concatenated ca-crl.pem.
type Publisher struct {
	cfg     PublisherConfig
	m       *Metrics
	changed notifier
	cur     atomic.Pointer[published]

	mu      sync.Mutex // serialises Refresh; guards the fields below
	chains  map[int][]*x509.Certificate
	sourced map[int]*CRL
	built   map[CAID]*CRL
	files   map[string]*fileCRLs
	last    map[CAID]*CRL // CRLs published last time, kept while valid after their CA leaves the chains
	gauged  map[CAID]bool // CAs that have CRL gauges
	logged  map[string]string
}

type fileCRLs struct {
	digest [sha256.Size]byte
	crls   []*CRL
}

type published struct {
	pem    []byte
	byID   map[CAID]*CRL
	crls   []*CRL
	report Report
}

// Report is the outcome of the last Refresh.
type Report struct {
	// Time is when it was made.
	Time time.Time
	// Coverage has one entry per CA of the served chains, in chain order.
	Coverage []Coverage
	// Complete is true when every CA has a valid CRL (a CA revoked by its issuer still counts as covered).
	Complete bool
	// Err joins the coverage problems, or is nil.
	Err error
}

// NewPublisher returns a Publisher for cfg. PEM is not ready until the first Refresh.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(cfg.Authorities) == 0 {
		return nil, errors.New("crl: the publisher needs at least one authority")
	}
	for _, a := range cfg.Authorities {
		if a.Chain == nil {
			return nil, fmt.Errorf("crl: authority %q has no chain", a.Name)
		}
		if a.Signer != nil && cfg.Registry == nil {
			return nil, fmt.Errorf("crl: authority %q signs CRLs but the publisher has no registry", a.Name)
		}
	}
	for _, b := range cfg.Bundles {
		if b.Read == nil {
			return nil, fmt.Errorf("crl: bundle %q has no Read", b.Name)
		}
	}
	if cfg.Interval == 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p := &Publisher{cfg: cfg, m: cfg.Metrics, chains: map[int][]*x509.Certificate{}, sourced: map[int]*CRL{},
		built: map[CAID]*CRL{}, files: map[string]*fileCRLs{}, last: map[CAID]*CRL{}, logged: map[string]string{}}
	if p.m == nil {
		p.m, _ = NewMetrics(nil)
	}
	return p, nil
}

// Run refreshes every Interval and at every change of the Registry until ctx ends, then returns nil.
func (p *Publisher) Run(ctx context.Context) error {
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		var rc <-chan struct{}
		if p.cfg.Registry != nil {
			rc = p.cfg.Registry.Changed()
		}
		p.Refresh(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-rc:
		}
	}
}

// Changed returns a channel that is closed when PEM next changes.
func (p *Publisher) Changed() <-chan struct{} { return p.changed.wait() }

// PEM returns the ca-crl.pem to publish, the CRLs of every CA in chain order, and false until the first
// Refresh. It is empty when there is nothing to publish, or (without FailClosed) when the set is incomplete.
func (p *Publisher) PEM() ([]byte, bool) {
	cur := p.cur.Load()
	if cur == nil {
		return nil, false
	}
	return cur.pem, true
}

// DER returns the current DER CRL of the CA id.
func (p *Publisher) DER(id CAID) ([]byte, bool) {
	if cur := p.cur.Load(); cur != nil {
		if c, ok := cur.byID[id]; ok {
			return c.DER, true
		}
	}
	return nil, false
}

// CRLs returns the current CRL of each covered CA, in chain order.
func (p *Publisher) CRLs() []*CRL {
	if cur := p.cur.Load(); cur != nil {
		return cur.crls
	}
	return nil
}

// Report returns the outcome of the last Refresh.
func (p *Publisher) Report() Report {
	if cur := p.cur.Load(); cur != nil {
		return cur.report
	}
	return Report{Err: errors.New("crl: no CRLs yet")}
}

// Refresh re-reads the chains, backend CRLs and files, re-issues meshca's CRLs when due, checks coverage and
// updates PEM. Problems are logged, counted and returned in the report; the previous good CRLs of a source
// that fails stay in use while they are valid.
func (p *Publisher) Refresh(ctx context.Context) Report {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.cfg.Clock()
	var chains [][]*x509.Certificate
	var own, others []*CRL
	for i, a := range p.cfg.Authorities {
		chain, err := a.Chain(ctx)
		if err == nil && len(chain) == 0 {
			err = errors.New("empty chain")
		}
		p.note("chain/"+a.Name, TargetSource, err, "reading the CA chain failed; the last one stays",
			"authority", a.Name)
		if err == nil {
			p.chains[i] = chain
		}
		if chain = p.chains[i]; chain == nil {
			continue
		}
		chains = append(chains, chain)
		if a.Signer != nil {
			c, err := p.cfg.Registry.Issue(ctx, chain[0], a.Signer)
			p.note("build/"+a.Name, TargetBuild, err, "building the CRL failed; the last one stays while valid",
				"authority", a.Name, "ca", chain[0].Subject.String())
			if err == nil {
				p.built[c.ID] = c
			}
			if c := p.built[IDOf(chain[0])]; c != nil {
				own = append(own, c)
			}
		}
		if a.Source != nil {
			c, err := p.fromSource(ctx, a)
			p.note("source/"+a.Name, TargetSource, err, "reading the backend's CRL failed; the last one stays",
				"authority", a.Name)
			if err == nil {
				p.sourced[i] = c
			}
			if c := p.sourced[i]; c != nil {
				others = append(others, c)
			}
		}
	}
	for _, f := range p.cfg.Files {
		data, err := os.ReadFile(f)
		others = append(others, p.readBundle("file "+f, data, err)...)
	}
	for _, b := range p.cfg.Bundles {
		data, err := b.Read(ctx)
		others = append(others, p.readBundle("bundle "+b.Name, data, err)...)
	}
	cas := CAs(chains...)
	return p.assemble(cas, own, others, now)
}

func (p *Publisher) fromSource(ctx context.Context, a Authority) (*CRL, error) {
	der, err := a.Source.CRL(ctx)
	if err != nil {
		return nil, err
	}
	list, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCRL, err)
	}
	return &CRL{DER: der, List: list, Origin: "backend " + a.Name}, nil
}

// readBundle returns the CRLs of data read from origin, or the last good ones of origin when err is set or
// data does not parse.
func (p *Publisher) readBundle(origin string, data []byte, err error) []*CRL {
	prev := p.files[origin]
	if err == nil {
		d := sha256.Sum256(data)
		if prev != nil && prev.digest == d {
			p.note(origin, TargetFile, nil, "") // the last good content back after an error is a recovery
			return prev.crls
		}
		var lists []*x509.RevocationList
		if lists, err = ParseBundle(data); err == nil {
			next := &fileCRLs{digest: d}
			for _, l := range lists {
				next.crls = append(next.crls, &CRL{DER: l.Raw, List: l, Origin: origin})
			}
			p.files[origin] = next
			p.note(origin, TargetFile, nil, "")
			p.cfg.Logger.Info("CRLs read", "origin", origin, "crls", len(lists))
			return next.crls
		}
	}
	p.note(origin, TargetFile, err, "reading CRLs failed; the last good ones stay", "origin", origin)
	if prev == nil {
		return nil
	}
	return prev.crls
}

// note counts and logs err under key, logging the same error once; a nil err after an error logs recovery.
func (p *Publisher) note(key, target string, err error, msg string, args ...any) {
	if err == nil {
		if p.logged[key] != "" {
			p.cfg.Logger.Info("recovered", "what", key)
		}
		delete(p.logged, key)
		return
	}
	p.m.PublishError(target)
	level := slog.LevelError
	if p.logged[key] == err.Error() {
		level = slog.LevelDebug
	}
	p.logged[key] = err.Error()
	p.cfg.Logger.Log(context.Background(), level, msg, append(args, "error", err)...)
}
