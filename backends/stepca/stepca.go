package stepca

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/csr"
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

	// tokenHook, set only by tests, may replace each minted token before it is sent.
	tokenHook func(string) string
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
	base, _ := url.Parse(strings.TrimSuffix(cfg.URL, "/"))
	b := &Backend{cfg: cfg, base: base, host: base.Hostname()}

	m := &minter{name: cfg.provisionerName(), lifetime: cfg.TokenLifetime}
	if cfg.JWK != nil {
		k, err := loadJWK(cfg.JWK, cfg.Getenv)
		if err != nil {
			return nil, err
		}
		m.kind, m.jwk = "JWK", k
	} else {
		m.kind, m.cred = "X5C", &credentialFile{cfg: cfg.X5C}
		c, err := m.cred.get()
		if err != nil {
			return nil, err
		}
		if na := c.chain[0].NotAfter; !cfg.Clock().Before(na) {
			return nil, fmt.Errorf("stepca: the x5c credential %s expired at %s; renew it", cfg.X5C.CertFile, na.UTC().Format(time.RFC3339))
		}
	}
	b.minter = m

	if cfg.RootsFile != "" {
		data, err := os.ReadFile(cfg.RootsFile)
		if err != nil {
			return nil, fmt.Errorf("stepca: reading rootsFile: %w", err)
		}
		roots, err := backends.ParseCertificates(data)
		if err != nil {
			return nil, fmt.Errorf("stepca: rootsFile %s: %w", cfg.RootsFile, err)
		}
		b.pin.Store(newAnchors(roots))
	}

	dialer := &net.Dialer{Timeout: min(cfg.Timeout, 2*time.Second), KeepAlive: 30 * time.Second}
	b.client = &http.Client{
		Transport: &http.Transport{
			DialContext:         dialer.DialContext,
			TLSHandshakeTimeout: cfg.Timeout,
			// Certificates are verified in verifyServer against the current trust state, which changes
			// when step-ca's roots are refreshed; the standard verification is replaced, not skipped.
			TLSClientConfig: &tls.Config{
				MinVersion:         tls.VersionTLS12,
				InsecureSkipVerify: true, //nolint:gosec // see verifyServer
				VerifyConnection:   b.verifyServer,
			},
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
		},
		Timeout: cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("step-ca answered with a redirect; point url at step-ca itself")
		},
	}

	if _, err := b.refreshRoots(ctx); err != nil {
		if !errors.Is(err, backends.ErrUnavailable) {
			return nil, err
		}
		cfg.Logger.Warn("step-ca is unreachable; the backend reports unavailable until it answers",
			"url", cfg.URL, "error", err)
	}
	cfg.Logger.Info("stepca backend configured", "url", cfg.URL, "provisioner", m.name, "type", m.kind)
	return b, nil
}

// Sign issues a certificate through step-ca's /1.0/sign. The token names exactly req's SANs and carries
// the CSR's fingerprint, so step-ca can certify nothing else; the template on step-ca's side must copy the
// token's SANs and leave the subject empty (docs/stepca.md). With an X5C provisioner, step-ca refuses
// certificates that outlive meshca's credential (or start before it), so the TTL is capped at the credential's
// NotAfter (the leaf shows the shortening, and a warning is logged) and a credential with less than a minute
// left makes the backend unavailable.
func (b *Backend) Sign(ctx context.Context, req *backends.SignRequest) (*backends.SignResponse, error) {
	sans, err := checkRequest(req)
	if err != nil {
		return nil, err
	}
	if _, err := b.trust(ctx); err != nil { // TLS to step-ca needs its roots
		return nil, err
	}
	now := b.cfg.Clock().UTC().Truncate(time.Second)
	notBefore := now.Add(-b.cfg.Backdate)
	credFrom, credUntil, err := b.minter.window()
	if err != nil {
		return nil, fmt.Errorf("stepca: x5c credential: %w: %w", backends.ErrUnavailable, err)
	}
	if notBefore.Before(credFrom) { // a freshly rotated credential: backdate less
		notBefore = credFrom.UTC()
	}
	notAfter := notBefore.Add(req.TTL)
	if !credUntil.IsZero() && notAfter.After(credUntil) {
		if credUntil.Sub(now) < time.Minute {
			return nil, fmt.Errorf("stepca: the x5c credential %s expires at %s, too soon to sign with; renew it: %w",
				b.cfg.X5C.CertFile, credUntil.UTC().Format(time.RFC3339), backends.ErrUnavailable)
		}
		if last := b.lastCapWarning.Load(); now.Unix()-last >= 60 && b.lastCapWarning.CompareAndSwap(last, now.Unix()) {
			b.cfg.Logger.Warn("stepca: TTL capped at the x5c credential's expiry; renew the credential (logged once a minute)",
				"requested", req.TTL, "notAfter", credUntil.UTC().Format(time.RFC3339))
		}
		notAfter = credUntil.UTC()
	}

	tok, err := b.minter.mint(now, b.minter.audience(b.base, "sign"), sans[0], sans, csrFingerprint(req.CSR.Raw))
	if err != nil {
		return nil, err
	}
	if b.tokenHook != nil {
		tok = b.tokenHook(tok)
	}
	body := signRequest{
		CSR:       string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: req.CSR.Raw})),
		OTT:       tok,
		NotBefore: notBefore.Format(time.RFC3339),
		NotAfter:  notAfter.Format(time.RFC3339),
	}
	var resp signResponse
	if err := b.call(ctx, "sign", http.MethodPost, "/1.0/sign", body, &resp, maxResponse); err != nil {
		return nil, err
	}

	certs := resp.CertChain
	if len(certs) == 0 { // step-ca before certChain existed
		certs = []string{resp.Crt, resp.CA}
	}
	chain, err := b.verifyIssued(ctx, certs, req)
	if err != nil {
		return nil, err
	}
	b.cfg.Logger.Debug("stepca: certificate issued", "serial", chain[0].SerialNumber.String(),
		"sans", sans, "notAfter", chain[0].NotAfter.UTC().Format(time.RFC3339))
	return &backends.SignResponse{Chain: chain}, nil
}

// checkRequest checks that req is one step-ca can sign as asked and returns the SANs for the token: URI
// SANs (each a Kubernetes-shaped SPIFFE ID), then DNS names, then IP addresses.
func checkRequest(req *backends.SignRequest) ([]string, error) {
	if req == nil || req.CSR == nil {
		return nil, errors.New("stepca: sign request without a CSR; step-ca signs only CSRs")
	}
	if !publicKeysEqual(req.CSR.PublicKey, req.PublicKey) {
		return nil, errors.New("stepca: the request's public key is not the CSR's; step-ca certifies the CSR's key only")
	}
	if req.TTL <= 0 {
		return nil, fmt.Errorf("stepca: TTL %s must be positive", req.TTL)
	}
	var sans []string
	for _, u := range req.URIs {
		if _, err := csr.ParseURI(u); err != nil {
			return nil, fmt.Errorf("stepca: URI SAN: %w", err)
		}
		sans = append(sans, u.String())
	}
	sans = append(sans, req.DNSNames...)
	for _, ip := range req.IPAddresses {
		sans = append(sans, ip.String())
	}
	if len(sans) == 0 {
		return nil, errors.New("stepca: the request has no SANs; step-ca needs at least one")
	}
	// step-ca certifies a CSR only if its SANs are exactly the token's. The core has already checked the
	// CSR against the identity; a difference here is a bug upstream, not something to paper over.
	if !sameSANs(req.CSR.URIs, req.CSR.DNSNames, req.CSR.IPAddresses, req) || len(req.CSR.EmailAddresses) > 0 {
		return nil, errors.New("stepca: the CSR's SANs differ from the request's; step-ca certifies a CSR only when its SANs are exactly the certificate's")
	}
	return sans, nil
}

// verifyIssued parses step-ca's PEM certificates (leaf, intermediates), verifies them against the cached
// roots, and checks the leaf certifies exactly req. It returns the chain leaf → intermediates → root.
func (b *Backend) verifyIssued(ctx context.Context, pems []string, req *backends.SignRequest) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for _, p := range pems {
		cs, err := backends.ParseCertificates([]byte(p))
		if err != nil {
			return nil, fmt.Errorf("stepca: sign response: %w: %v", backends.ErrBadChain, err)
		}
		certs = append(certs, cs...)
	}
	st, err := b.trust(ctx)
	if err != nil {
		return nil, err
	}
	chain, err := verifyChain(st.pool, certs[0], certs[1:])
	if err != nil {
		return nil, fmt.Errorf("stepca: issued certificate does not chain to step-ca's pinned roots: %w: %v", backends.ErrBadChain, err)
	}
	leaf := chain[0]
	if !publicKeysEqual(leaf.PublicKey, req.PublicKey) {
		return nil, fmt.Errorf("stepca: issued certificate is for another key: %w", backends.ErrBadChain)
	}
	if !sameSANs(leaf.URIs, leaf.DNSNames, leaf.IPAddresses, req) || len(leaf.EmailAddresses) > 0 {
		return nil, fmt.Errorf("stepca: issued certificate's SANs %v %v %v are not the requested ones; check the provisioner template: %w",
			leaf.URIs, leaf.DNSNames, leaf.IPAddresses, backends.ErrBadChain)
	}
	if leaf.IsCA {
		return nil, fmt.Errorf("stepca: issued certificate is a CA certificate; check the provisioner template: %w", backends.ErrBadChain)
	}
	return chain, nil
}

// verifyChain verifies leaf up to a root in pool and returns the shortest verified chain, root last.
func verifyChain(pool *x509.CertPool, leaf *x509.Certificate, intermediates []*x509.Certificate) ([]*x509.Certificate, error) {
	inter := x509.NewCertPool()
	for _, c := range intermediates {
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, err
	}
	best := chains[0]
	for _, c := range chains[1:] {
		if len(c) < len(best) {
			best = c
		}
	}
	return best, nil
}

func sameSANs(uris []*url.URL, dns []string, ips []net.IP, req *backends.SignRequest) bool {
	if len(uris) != len(req.URIs) || len(ips) != len(req.IPAddresses) {
		return false
	}
	for i := range uris {
		if uris[i].String() != req.URIs[i].String() {
			return false
		}
	}
	for i := range ips {
		if !ips[i].Equal(req.IPAddresses[i]) {
			return false
		}
	}
	return slices.Equal(dns, req.DNSNames)
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
		return nil, fmt.Errorf("stepca: step-ca's intermediates do not chain to its roots: %w: %v", backends.ErrBadChain, err)
	}
	return chain, nil
}

// Revoke revokes a certificate step-ca issued, with a token for /1.0/revoke whose subject is the serial.
// step-ca supports passive revocation only: the serial is recorded and appears in its CRL.
func (b *Backend) Revoke(ctx context.Context, req *backends.RevokeRequest) error {
	serial := req.SerialNumber
	if serial == nil && req.Certificate != nil {
		serial = req.Certificate.SerialNumber
	}
	if serial == nil {
		return errors.New("stepca: revoke needs a serial number or the certificate")
	}
	if req.Reason < 0 || req.Reason > 10 || req.Reason == 7 {
		return fmt.Errorf("stepca: revocation reason %d is not an RFC 5280 §5.3.1 reason code", req.Reason)
	}
	now := b.cfg.Clock().UTC()
	tok, err := b.minter.mint(now, b.minter.audience(b.base, "revoke"), serial.String(), nil, "")
	if err != nil {
		return err
	}
	if b.tokenHook != nil {
		tok = b.tokenHook(tok)
	}
	body := revokeRequest{Serial: serial.String(), OTT: tok, ReasonCode: req.Reason, Passive: true}
	var resp struct {
		Status string `json:"status"`
	}
	if err := b.call(ctx, "revoke", http.MethodPost, "/1.0/revoke", body, &resp, maxResponse); err != nil {
		return err
	}
	b.cfg.Logger.Info("stepca: certificate revoked", "serial", serial.String(), "reason", req.Reason)
	return nil
}

// CRL returns step-ca's current DER CRL from /1.0/crl after checking it is signed by step-ca's signing CA.
// step-ca serves a CRL only when ca.json has crl.enabled; otherwise CRL fails with ErrRefused.
func (b *Backend) CRL(ctx context.Context) ([]byte, error) {
	der, err := b.get(ctx, "crl", "/1.0/crl", maxCRLResponse)
	if err != nil {
		if errors.Is(err, backends.ErrRefused) {
			return nil, fmt.Errorf("%w (is crl.enabled set in step-ca's ca.json?)", err)
		}
		return nil, err
	}
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("stepca: step-ca's CRL does not parse: %w", err)
	}
	chain, err := b.CAChain(ctx)
	if err != nil {
		return nil, err
	}
	for _, ca := range chain {
		if rl.CheckSignatureFrom(ca) == nil {
			return der, nil
		}
	}
	return nil, fmt.Errorf("stepca: step-ca's CRL (issuer %s) is not signed by its CA chain: %w", rl.Issuer, backends.ErrBadChain)
}

// Check reports whether step-ca answers /health and the provisioner credential is usable (an X5C credential
// with less than a minute left is not).
func (b *Backend) Check(ctx context.Context) error {
	_, limit, err := b.minter.window()
	if err != nil {
		return fmt.Errorf("stepca: x5c credential: %w: %w", backends.ErrUnavailable, err)
	}
	if !limit.IsZero() && limit.Sub(b.cfg.Clock()) < time.Minute {
		return fmt.Errorf("stepca: the x5c credential %s expires at %s; renew it: %w",
			b.cfg.X5C.CertFile, limit.UTC().Format(time.RFC3339), backends.ErrUnavailable)
	}
	if _, err := b.trust(ctx); err != nil {
		return err
	}
	var h struct {
		Status string `json:"status"`
	}
	if err := b.call(ctx, "health", http.MethodGet, "/health", nil, &h, maxResponse); err != nil {
		return err
	}
	if h.Status != "ok" {
		return fmt.Errorf("stepca: step-ca health is %q: %w", h.Status, backends.ErrUnavailable)
	}
	return nil
}

// trust returns the current trust state, fetching it when there is none and starting a background refresh
// when it is stale.
func (b *Backend) trust(ctx context.Context) (*trustState, error) {
	st := b.state.Load()
	if st == nil {
		return b.refreshRoots(ctx)
	}
	if b.cfg.Clock().Sub(st.fetched) > b.cfg.RootsRefresh && b.refreshing.CompareAndSwap(false, true) {
		go func() {
			defer b.refreshing.Store(false)
			ctx, cancel := context.WithTimeout(context.Background(), b.cfg.Timeout)
			defer cancel()
			if _, err := b.refreshRoots(ctx); err != nil {
				b.cfg.Logger.Warn("stepca: refreshing step-ca's roots failed; keeping the cached ones", "error", err)
			}
		}()
	}
	return st, nil
}

// refreshRoots fetches /roots and /intermediates, accepting them only if step-ca still holds a pinned root.
func (b *Backend) refreshRoots(ctx context.Context) (*trustState, error) {
	pin := b.pin.Load()
	if pin == nil {
		root, err := b.bootstrap(ctx)
		if err != nil {
			return nil, err
		}
		pin = newAnchors([]*x509.Certificate{root})
		b.pin.CompareAndSwap(nil, pin)
	}
	var roots, inters certsResponse
	if err := b.call(ctx, "roots", http.MethodGet, "/1.0/roots", nil, &roots, maxResponse); err != nil {
		return nil, err
	}
	if err := b.call(ctx, "intermediates", http.MethodGet, "/1.0/intermediates", nil, &inters, maxResponse); err != nil {
		return nil, err
	}
	st := &trustState{pool: x509.NewCertPool(), fetched: b.cfg.Clock()}
	for _, p := range roots.Certificates {
		cs, err := backends.ParseCertificates([]byte(p))
		if err != nil {
			return nil, fmt.Errorf("stepca: /roots: %w: %v", backends.ErrBadChain, err)
		}
		st.roots = append(st.roots, cs...)
	}
	for _, p := range inters.Certificates {
		cs, err := backends.ParseCertificates([]byte(p))
		if err != nil {
			return nil, fmt.Errorf("stepca: /intermediates: %w: %v", backends.ErrBadChain, err)
		}
		st.intermediates = append(st.intermediates, cs...)
	}
	pinnedFound := false
	for _, r := range st.roots {
		st.pool.AddCert(r)
		for _, p := range pin.certs {
			pinnedFound = pinnedFound || r.Equal(p)
		}
	}
	if !pinnedFound {
		return nil, fmt.Errorf("stepca: step-ca's /roots no longer holds the pinned root; update rootFingerprint or rootsFile after a root rotation: %w", backends.ErrBadChain)
	}
	b.state.Store(st)
	return st, nil
}

// bootstrap fetches the root whose SHA-256 is RootFingerprint from /root/<fingerprint>. The connection is
// not authenticated; the hash is what makes the answer trustworthy.
func (b *Backend) bootstrap(ctx context.Context) (*x509.Certificate, error) {
	fp := normalizeFingerprint(b.cfg.RootFingerprint)
	client := &http.Client{
		Timeout: b.cfg.Timeout,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}, //nolint:gosec // checked by hash below
			DialContext:     (&net.Dialer{Timeout: min(b.cfg.Timeout, 2*time.Second)}).DialContext,
		},
	}
	defer client.CloseIdleConnections()
	var resp struct {
		Root string `json:"ca"`
	}
	if err := b.callWith(ctx, client, "root", http.MethodGet, "/1.0/root/"+fp, nil, &resp, maxResponse); err != nil {
		if errors.Is(err, backends.ErrRefused) {
			return nil, fmt.Errorf("stepca: step-ca has no root with rootFingerprint %s; check the fingerprint and url: %w: %w", fp, backends.ErrBadChain, err)
		}
		return nil, err
	}
	certs, err := backends.ParseCertificates([]byte(resp.Root))
	if err != nil {
		return nil, fmt.Errorf("stepca: /root/%s: %w: %v", fp, backends.ErrBadChain, err)
	}
	sum := sha256.Sum256(certs[0].Raw)
	if hex.EncodeToString(sum[:]) != fp {
		return nil, fmt.Errorf("stepca: step-ca's root does not match rootFingerprint %s; is url pointing at the right CA?: %w", fp, backends.ErrBadChain)
	}
	return certs[0], nil
}

// errServerTrust marks a TLS handshake that failed because step-ca's certificate does not verify.
type errServerTrust struct{ err error }

func (e *errServerTrust) Error() string { return e.err.Error() }
func (e *errServerTrust) Unwrap() error { return e.err }

// verifyServer authenticates step-ca's TLS certificate against the current roots and the URL's host.
func (b *Backend) verifyServer(cs tls.ConnectionState) error {
	if err := b.verifyServerChain(cs); err != nil {
		return &errServerTrust{err}
	}
	return nil
}

func (b *Backend) verifyServerChain(cs tls.ConnectionState) error {
	var pool *x509.CertPool
	if st := b.state.Load(); st != nil {
		pool = st.pool
	} else if pin := b.pin.Load(); pin != nil {
		pool = pin.pool
	} else {
		return errors.New("no trusted step-ca roots yet")
	}
	if len(cs.PeerCertificates) == 0 {
		return errors.New("step-ca sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots: pool, Intermediates: inter, DNSName: b.host,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	return err
}

// Wire types of step-ca's API (github.com/smallstep/certificates/api), kept here so meshca does not import
// the whole authority.
type (
	signRequest struct {
		CSR       string `json:"csr"`
		OTT       string `json:"ott"`
		NotBefore string `json:"notBefore,omitempty"`
		NotAfter  string `json:"notAfter,omitempty"`
	}
	signResponse struct {
		Crt       string   `json:"crt"`
		CA        string   `json:"ca"`
		CertChain []string `json:"certChain"`
	}
	revokeRequest struct {
		Serial     string `json:"serial"`
		OTT        string `json:"ott"`
		ReasonCode int    `json:"reasonCode"`
		Reason     string `json:"reason,omitempty"`
		Passive    bool   `json:"passive"`
	}
	certsResponse struct {
		Certificates []string `json:"crts"`
	}
	apiError struct {
		Status  int    `json:"status"`
		Message string `json:"message"`
	}
)

// call sends one request to step-ca and decodes the JSON answer into out.
func (b *Backend) call(ctx context.Context, op, method, path string, in, out any, limit int64) error {
	return b.callWith(ctx, b.client, op, method, path, in, out, limit)
}

func (b *Backend) callWith(ctx context.Context, client *http.Client, op, method, path string, in, out any, limit int64) error {
	data, err := b.roundTrip(ctx, client, op, method, path, in, limit)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("stepca: %s: step-ca's answer is not the expected JSON: %w", op, err)
	}
	return nil
}

// get fetches a raw body.
func (b *Backend) get(ctx context.Context, op, path string, limit int64) ([]byte, error) {
	return b.roundTrip(ctx, b.client, op, http.MethodGet, path, nil, limit)
}

// roundTrip runs one HTTP exchange under the backend's deadline and maps failures onto the backends
// sentinels: no answer, a 5xx or 429 is ErrUnavailable; 401 is ErrUnauthorized; any other 4xx is ErrRefused.
func (b *Backend) roundTrip(ctx context.Context, client *http.Client, op, method, path string, in any, limit int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("stepca: %s: encoding the request: %w", op, err)
		}
		body = bytes.NewReader(data)
	}
	u := b.base.JoinPath(path)
	hreq, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("stepca: %s: %w", op, err)
	}
	if in != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}
	hreq.Header.Set("User-Agent", "meshca")
	resp, err := client.Do(hreq)
	var trustErr *errServerTrust
	if errors.As(err, &trustErr) {
		// Not reachable in any useful sense, so the core may fail over; but this is configuration, not an outage.
		return nil, fmt.Errorf("stepca: %s: the server at %s is not the pinned step-ca (its TLS certificate does not verify against rootFingerprint/rootsFile: %v): %w: %w",
			op, b.cfg.URL, trustErr.err, backends.ErrUnavailable, backends.ErrBadChain)
	}
	if err != nil {
		// url.Error holds the URL only (no token: tokens travel in the body).
		return nil, fmt.Errorf("stepca: %s: step-ca at %s did not answer (is it running and reachable?): %w: %w", op, b.cfg.URL, backends.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("stepca: %s: reading step-ca's answer: %w: %w", op, backends.ErrUnavailable, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("stepca: %s: step-ca's answer is larger than %d bytes", op, limit)
	}
	if resp.StatusCode/100 == 2 {
		return data, nil
	}
	msg := http.StatusText(resp.StatusCode)
	var ae apiError
	if json.Unmarshal(data, &ae) == nil && ae.Message != "" {
		msg = ae.Message
	}
	var kind error
	switch {
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		kind = backends.ErrUnavailable
	case resp.StatusCode == http.StatusUnauthorized:
		kind = ErrUnauthorized
	default:
		kind = backends.ErrRefused
	}
	return nil, fmt.Errorf("stepca: %s: step-ca answered %d %q (request id %s): %w",
		op, resp.StatusCode, msg, resp.Header.Get("X-Request-Id"), kind)
}
