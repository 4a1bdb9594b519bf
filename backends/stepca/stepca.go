package stepca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/meshca/meshca/backends"
)

// ErrUnauthorized means step-ca did not accept meshca's provisioner token (HTTP 401): a wrong provisioner
// name or key, a clock skewed by more than a minute, an expired X5C credential, or a token that was already
// used. It is neither ErrRefused nor ErrUnavailable: the request was fine and step-ca is up, meshca's own
// credential or state is wrong, so the core reports an internal error and does not fail over.
var ErrUnauthorized = errors.New("step-ca did not accept meshca's provisioner token")

// Response size limits: a sign response is a few certificates; a CRL may list many serials.
const (
	maxResponse    = 1 << 20
	maxCRLResponse = 64 << 20
)

// Backend signs through a remote step-ca with a JWK or X5C provisioner. It implements backends.Backend,
// backends.Revoker, backends.CRLSource, backends.Checker and backends.Chainer, and is safe for concurrent use.
type Backend struct {
	cfg    Config
	base   *url.URL
	host   string // server name step-ca's TLS certificate must carry
	minter *minter
	client *http.Client

	// pin holds the trust anchors from the config: RootsFile, or the root matching RootFingerprint once
	// bootstrap has fetched it. TLS trusts them alone until step-ca's full root set has been fetched.
	pin   atomic.Pointer[anchors]
	state atomic.Pointer[trustState]
	// refreshing is set while a background roots refresh runs, so at most one runs at a time.
	refreshing atomic.Bool

	// lastCapWarning is the Unix time of the last "TTL capped" warning, so it is logged once a minute.
	lastCapWarning atomic.Int64
}

type anchors struct {
	certs []*x509.Certificate
	pool  *x509.CertPool
}

func newAnchors(certs []*x509.Certificate) *anchors {
	a := &anchors{certs: certs, pool: x509.NewCertPool()}
	for _, c := range certs {
		a.pool.AddCert(c)
	}
	return a
}

// trustState is what the backend trusts, fetched from step-ca and verified against the pinned roots.
type trustState struct {
	roots         []*x509.Certificate // step-ca's /roots
	intermediates []*x509.Certificate // step-ca's /intermediates, signing CA first
	pool          *x509.CertPool      // roots, for TLS and chain verification
	fetched       time.Time
}

var (
	_ backends.Backend   = (*Backend)(nil)
	_ backends.Revoker   = (*Backend)(nil)
	_ backends.CRLSource = (*Backend)(nil)
	_ backends.Checker   = (*Backend)(nil)
	_ backends.Chainer   = (*Backend)(nil)
)

// New validates cfg, loads the provisioner credential and pins step-ca's roots. With RootFingerprint it
// fetches the matching root from step-ca; if step-ca is unreachable then, New still succeeds (meshca may
// start before step-ca, or fail over to another backend) and the backend reports ErrUnavailable until the
// roots are fetched. Configuration and credential errors fail New.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	base, _ := url.Parse(strings.TrimSuffix(cfg.URL, "/")) // Validate parsed it
	b := &Backend{cfg: cfg, base: base, host: base.Hostname()}
	var err error
	if b.minter, err = newMinter(&cfg); err != nil {
		return nil, err
	}
	if cfg.RootsFile != "" {
		roots, err := readRoots(cfg.RootsFile)
		if err != nil {
			return nil, err
		}
		b.pin.Store(newAnchors(roots))
	}
	b.client = b.newHTTPClient()
	if _, err := b.refreshRoots(ctx); err != nil {
		if !errors.Is(err, backends.ErrUnavailable) {
			return nil, err
		}
		cfg.Logger.Warn("step-ca is unreachable; the backend reports unavailable until it answers",
			"url", cfg.URL, "error", err)
	}
	cfg.Logger.Info("stepca backend configured", "url", cfg.URL, "provisioner", b.minter.name, "type", b.minter.kind)
	return b, nil
}

// readRoots reads the pinned roots of rootsFile.
func readRoots(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("stepca: reading rootsFile: %w", err)
	}
	roots, err := backends.ParseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("stepca: rootsFile %s: %w", path, err)
	}
	return roots, nil
}

// newHTTPClient returns the client for every call but bootstrap: step-ca's TLS certificate is verified against
// the current trust state by verifyServer, and every call is bounded by the configured timeout.
func (b *Backend) newHTTPClient() *http.Client {
	dialer := &net.Dialer{Timeout: min(b.cfg.Timeout, 2*time.Second), KeepAlive: 30 * time.Second}
	return &http.Client{
		Transport: &http.Transport{
			DialContext:         dialer.DialContext,
			TLSHandshakeTimeout: b.cfg.Timeout,
			// Certificates are verified in verifyServer against the current trust state, which changes
			// when step-ca's roots are refreshed; the standard verification is replaced, not skipped.
			TLSClientConfig: b.cfg.TLSPolicy.Clone(&tls.Config{
				MinVersion:         tls.VersionTLS12,
				InsecureSkipVerify: true, //nolint:gosec // see verifyServer
				VerifyConnection:   b.verifyServer,
			}),
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
		},
		Timeout: b.cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("step-ca answered with a redirect; point url at step-ca itself")
		},
	}
}

// Roots returns step-ca's roots from the cache. Once the cache is older than RootsRefresh it is refreshed in
// the background; the call itself never waits for step-ca unless nothing has been fetched yet.
func (b *Backend) Roots(ctx context.Context) ([]*x509.Certificate, error) {
	st, err := b.trust(ctx)
	if err != nil {
		return nil, err
	}
	return slices.Clone(st.roots), nil
}

// CAChain returns step-ca's signing chain: the intermediates from /intermediates, signing CA first, then
// the root they chain to.
func (b *Backend) CAChain(ctx context.Context) ([]*x509.Certificate, error) {
	st, err := b.trust(ctx)
	if err != nil {
		return nil, err
	}
	if len(st.intermediates) == 0 {
		return slices.Clone(st.roots[:1]), nil
	}
	chain, err := verifyChain(st.pool, st.intermediates[0], st.intermediates[1:])
	if err != nil {
		return nil, fmt.Errorf("stepca: step-ca's intermediates do not chain to its roots: %w: %v",
			backends.ErrBadChain, err)
	}
	return chain, nil
}
