package ca_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/csr"
	"github.com/meshca/meshca/internal/devtoken"
)

// faulty wraps a real file backend and misbehaves on demand: it is a fault injector, since no honest backend
// returns a tampered chain.
type faulty struct {
	backends.Backend
	fail   error                                    // returned instead of signing
	tamper func(*backends.SignResponse, *testing.T) // changes a good answer
	t      *testing.T
	calls  int
}

func (f *faulty) Sign(ctx context.Context, req *backends.SignRequest) (*backends.SignResponse, error) {
	f.calls++
	if f.fail != nil {
		return nil, f.fail
	}
	resp, err := f.Backend.Sign(ctx, req)
	if err == nil && f.tamper != nil {
		f.tamper(resp, f.t)
	}
	return resp, err
}

func newIssuer(t *testing.T, reg *prometheus.Registry, bs ...ca.NamedBackend) (*ca.Issuer, *devtoken.Minter) {
	t.Helper()
	return newIssuerTB(t, reg, bs...)
}

func newIssuerTB(t testing.TB, reg *prometheus.Registry, bs ...ca.NamedBackend) (*ca.Issuer, *devtoken.Minter) {
	t.Helper()
	return newIssuerWith(t, ca.Config{Backends: bs, Registerer: reg})
}

// newIssuerWith returns an issuer for cfg that trusts a fresh dev token minter, in trust domain cluster.local
// unless cfg.Policy names one, logging nowhere unless cfg.Logger is set.
func newIssuerWith(t testing.TB, cfg ca.Config) (*ca.Issuer, *devtoken.Minter) {
	t.Helper()
	dev, err := devtoken.Generate("")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Authenticator, err = authn.NewJWT([]authn.TokenIssuer{{Issuer: dev.Issuer, Keys: dev.Keys()}},
		authn.JWTOptions{}); err != nil {
		t.Fatal(err)
	}
	if cfg.Policy.TrustDomain == "" {
		cfg.Policy.TrustDomain = "cluster.local"
	}
	if cfg.Logger == nil {
		cfg.Logger = catest.DiscardLogger()
	}
	i, err := ca.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return i, dev
}

func request(t *testing.T, dev *devtoken.Minter) *ca.Request {
	t.Helper()
	return requestTB(t, dev)
}

func requestTB(t testing.TB, dev *devtoken.Minter) *ca.Request {
	t.Helper()
	tok, err := dev.Mint(devtoken.Claims{Namespace: "default", ServiceAccount: "sleep"})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := catest.WorkloadCSR(t, "spiffe://cluster.local/ns/default/sa/sleep")
	return &ca.Request{Credentials: authn.Request{Token: tok}, CSR: c}
}

func TestFailover(t *testing.T) {
	dirA, _ := catest.FileCA(t)
	dirB, _ := catest.FileCA(t)
	tests := []struct {
		name        string
		primaryErr  error
		wantBackend string
		wantErr     error
		wantCalls   int // calls to the secondary
	}{
		{"a healthy primary signs", nil, "primary", nil, 0},
		{"an unavailable primary fails over to the secondary", fmt.Errorf("dial: %w", backends.ErrUnavailable),
			"secondary", nil, 1},
		{"a primary that refuses does not fail over", fmt.Errorf("role: %w", backends.ErrRefused),
			"", backends.ErrRefused, 0},
		{"a primary that errors otherwise does not fail over", errors.New("boom"), "", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			p := &faulty{Backend: catest.FileBackend(t, dirA, nil), fail: tt.primaryErr}
			s := &faulty{Backend: catest.FileBackend(t, dirB, nil)}
			i, dev := newIssuer(t, reg, ca.NamedBackend{Name: "primary", Backend: p},
				ca.NamedBackend{Name: "secondary", Backend: s})
			res, err := i.Issue(context.Background(), request(t, dev))
			if tt.wantBackend == "" {
				if err == nil {
					t.Fatalf("issued by %s, want an error", res.Backend)
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Fatalf("error %v, want %v", err, tt.wantErr)
				}
			} else if err != nil || res.Backend != tt.wantBackend {
				t.Fatalf("Issue: %v %v, want backend %s", res, err, tt.wantBackend)
			}
			if s.calls != tt.wantCalls {
				t.Errorf("secondary called %d times, want %d", s.calls, tt.wantCalls)
			}
			if got := failovers(t, reg); got != float64(tt.wantCalls) {
				t.Errorf("meshca_backend_failovers_total = %v, want %d", got, tt.wantCalls)
			}
		})
	}
}

func failovers(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, _ := reg.Gather()
	v := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "meshca_backend_failovers_total" {
			for _, m := range mf.GetMetric() {
				v += m.GetCounter().GetValue()
			}
		}
	}
	return v
}

// TestTamperedAnswersAreRefused: the core verifies every chain a backend returns before it leaves meshca.
func TestTamperedAnswersAreRefused(t *testing.T) {
	dir, _ := catest.FileCA(t)
	otherDir, _ := catest.FileCA(t)
	other := catest.FileBackend(t, otherDir, nil)
	tests := []struct {
		name   string
		tamper func(*backends.SignResponse, *testing.T)
	}{
		{"a leaf for another key", func(r *backends.SignResponse, t *testing.T) {
			k := catest.ECKey(t)
			o, err := other.Sign(context.Background(),
				&backends.SignRequest{PublicKey: k.Public(), URIs: r.Leaf().URIs, TTL: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			r.Chain = o.Chain
		}},
		{"a leaf for another identity", func(r *backends.SignResponse, t *testing.T) {
			u, _ := url.Parse("spiffe://cluster.local/ns/default/sa/admin")
			o, err := other.Sign(context.Background(),
				&backends.SignRequest{PublicKey: r.Leaf().PublicKey, URIs: []*url.URL{u}, TTL: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			r.Chain = o.Chain
		}},
		{"a chain to another root", func(r *backends.SignResponse, t *testing.T) {
			o, err := other.Sign(context.Background(),
				&backends.SignRequest{PublicKey: r.Leaf().PublicKey, URIs: r.Leaf().URIs, TTL: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			r.Chain = o.Chain
		}},
		{"a leaf from another CA with the right CA chain", func(r *backends.SignResponse, t *testing.T) {
			o, err := other.Sign(context.Background(),
				&backends.SignRequest{PublicKey: r.Leaf().PublicKey, URIs: r.Leaf().URIs, TTL: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			r.Chain[0] = o.Chain[0]
		}},
		{"a chain without its root", func(r *backends.SignResponse, t *testing.T) { r.Chain = r.Chain[:1] }},
		{"a chain in the wrong order", func(r *backends.SignResponse, t *testing.T) {
			r.Chain = []*x509.Certificate{r.Chain[0], r.Chain[2], r.Chain[1]}
		}},
	}
	// Each case runs on a fresh issuer (full chain verification) and on one whose verified-chain cache is warm
	// (only the leaf's link is checked).
	for _, tt := range tests {
		for _, warm := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/warm=%v", tt.name, warm), func(t *testing.T) {
				f := &faulty{Backend: catest.FileBackend(t, dir, nil), t: t}
				i, dev := newIssuer(t, prometheus.NewRegistry(), ca.NamedBackend{Name: "file", Backend: f})
				if warm {
					if _, err := i.Issue(context.Background(), request(t, dev)); err != nil {
						t.Fatal(err)
					}
				}
				f.tamper = tt.tamper
				res, err := i.Issue(context.Background(), request(t, dev))
				if !errors.Is(err, backends.ErrBadChain) || res != nil {
					t.Fatalf("Issue: %v, %v; want ErrBadChain and nothing issued", res, err)
				}
				if ca.Reason(err) != "bad_chain" {
					t.Errorf("Reason = %q", ca.Reason(err))
				}
			})
		}
	}
}

func TestPolicy(t *testing.T) {
	p := ca.Policy{TrustDomain: "cluster.local", TrustDomainAliases: []string{"old.example"},
		DNSNameTemplates: []string{"{sa}.{ns}.svc"}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	target := csr.Identity{TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "sleep"}
	parse := func(o catest.CSROptions) *csr.Request {
		b, _ := catest.CSR(t, o)
		r, err := csr.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	tests := []struct {
		name    string
		req     catest.CSROptions
		ttl     time.Duration
		wantErr error
		wantTTL time.Duration
		wantDNS int
	}{
		{"the caller's own ID", catest.CSROptions{URIs: []string{target.String()}}, 0, nil, 24 * time.Hour, 0},
		{"the caller's ID in an alias trust domain",
			catest.CSROptions{
				URIs: []string{"spiffe://old.example/ns/default/sa/sleep"},
			}, 2 * time.Hour, nil, 2 * time.Hour, 0},
		{"a DNS name the templates allow",
			catest.CSROptions{
				URIs: []string{target.String()},
				DNS:  []string{"sleep.default.svc"},
			}, 0, nil, 24 * time.Hour, 1},
		{"a DNS name of another service",
			catest.CSROptions{
				URIs: []string{target.String()},
				DNS:  []string{"admin.default.svc"},
			}, 0, ca.ErrForbiddenSAN, 0, 0},
		{"another trust domain", catest.CSROptions{URIs: []string{"spiffe://evil/ns/default/sa/sleep"}}, 0,
			ca.ErrIdentityMismatch, 0, 0},
		{"a URI that is not a SPIFFE ID", catest.CSROptions{URIs: []string{"https://example.com/"}}, 0,
			ca.ErrIdentityMismatch, 0, 0},
		{"a CA", catest.CSROptions{IsCA: true}, 0, ca.ErrCARequested, 0, 0},
		{"a week", catest.CSROptions{}, 7 * 24 * time.Hour, nil, 24 * time.Hour, 0},
		{"a minute", catest.CSROptions{}, time.Minute, nil, time.Hour, 0},
		{"a negative lifetime", catest.CSROptions{}, -time.Second, ca.ErrInvalidRequest, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := p.Authorize(target, parse(tt.req), tt.ttl)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Authorize: %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || g.TTL != tt.wantTTL || len(g.DNSNames) != tt.wantDNS || g.Identity != target {
				t.Fatalf(
					"Authorize: %+v %v; want TTL %s, %d DNS names, identity %s",
					g,
					err,
					tt.wantTTL,
					tt.wantDNS,
					target,
				)
			}
		})
	}
	bad := []ca.Policy{
		{TrustDomain: "Cluster.Local"},
		{TrustDomain: "cluster.local", MinTTL: 2 * time.Hour, MaxTTL: time.Hour},
		{TrustDomain: "cluster.local", DefaultTTL: 48 * time.Hour, MaxTTL: 24 * time.Hour},
		{TrustDomain: "cluster.local", DNSNameTemplates: []string{"*.{ns}.svc"}},
		// Without {ns}, service account "a.b" of namespace x and service account "a" of namespace "b.x"...
		// would share names: every template must name the namespace (issue 15, item 10).
		{TrustDomain: "cluster.local", DNSNameTemplates: []string{"{sa}.svc.cluster.local"}},
		{TrustDomain: "cluster.local", DNSNameTemplates: []string{"{sa}.{ns}.svc", "static.example.com"}},
	}
	for _, b := range bad {
		if b.Validate() == nil {
			t.Errorf("Validate(%+v) = nil, want an error", b)
		}
	}
}
