package vault

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"
	"golang.org/x/sync/singleflight"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/csr"
)

// Backend signs with a Vault PKI mount. It implements backends.Backend, Revoker, CRLSource, Checker and Chainer.
// It is safe for concurrent use and holds no lock across a call to Vault.
type Backend struct {
	cfg    Config
	client *api.Client // carries meshca's current token
	login  *api.Client // never carries a token: used for the login endpoints
	// anchors holds the trust anchors known without Vault (rootsFile, rootsPEM); nil when they are pinned
	// by fingerprint and fetched from the mount.
	anchors []*x509.Certificate
	// ca is the verified issuing chain and the anchors; nil until the first successful contact with Vault.
	ca      atomic.Pointer[caState]
	initErr atomic.Pointer[error] // why ca is still nil
	token   atomic.Pointer[tokenState]
	flight  singleflight.Group

	signPath string
	cancel   context.CancelFunc
	done     chan struct{}
}

var (
	_ backends.Backend   = (*Backend)(nil)
	_ backends.Revoker   = (*Backend)(nil)
	_ backends.CRLSource = (*Backend)(nil)
	_ backends.Checker   = (*Backend)(nil)
	_ backends.Chainer   = (*Backend)(nil)
)

// New connects to Vault, logs in, loads the trust anchors and the mount's CA chain, and starts the background
// goroutine that keeps the token alive and the chain fresh until Close is called or ctx ends.
//
// When Vault cannot be reached (an error wrapping backends.ErrUnavailable), New fails, unless
// Config.StartUnavailable is set: then it returns a Backend whose calls fail with ErrUnavailable while the
// background goroutine keeps trying, so that meshca can start and fail over to its other backends.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	b := &Backend{cfg: cfg, done: make(chan struct{})}
	b.signPath = signPath(&cfg)
	var err error
	if b.client, err = newClient(&cfg); err != nil {
		return nil, err
	}
	if b.login, err = newClient(&cfg); err != nil {
		return nil, err
	}
	if cfg.TLS.InsecureSkipVerify {
		cfg.Logger.Error("vault: TLS verification of Vault's certificate is OFF (tls.insecureSkipVerify): anyone on the path can impersonate Vault and read meshca's token",
			"address", cfg.Address)
	}
	if b.anchors, err = b.configuredAnchors(); err != nil {
		return nil, err
	}
	if err := b.connect(ctx); err != nil {
		if !cfg.StartUnavailable || !errors.Is(err, backends.ErrUnavailable) || isDenied(err) {
			return nil, err
		}
		b.initErr.Store(&err)
		cfg.Logger.Error("vault unreachable at start; retrying in the background (startUnavailable)",
			"address", cfg.Address, "mount", cfg.Mount, "error", err)
	}
	ctx, b.cancel = context.WithCancel(ctx)
	go b.run(ctx)
	return b, nil
}

// connect does everything that needs Vault before the first signature: login, the pinned anchors, the
// issuer's chain. On success the backend is ready.
func (b *Backend) connect(ctx context.Context) error {
	if err := b.refreshToken(ctx, true); err != nil {
		return err
	}
	anchors := b.anchors
	if anchors == nil {
		var err error
		if anchors, err = b.pinnedAnchors(ctx); err != nil {
			return err
		}
	}
	if err := b.refreshCAChain(ctx, anchors); err != nil {
		return err
	}
	st := b.ca.Load()
	b.cfg.Logger.Info("vault backend ready", "address", b.cfg.Address, "mount", b.cfg.Mount, "mode", b.cfg.Mode,
		"role", b.cfg.Role, "auth", b.cfg.Auth.Method, "issuer", st.chain[0].Subject.String(),
		"issuer_not_after", st.chain[0].NotAfter.UTC(), "roots", len(st.anchors))
	return nil
}

// state returns the verified CA state, or an error wrapping backends.ErrUnavailable while Vault has not been
// reached yet.
func (b *Backend) state() (*caState, error) {
	if st := b.ca.Load(); st != nil {
		return st, nil
	}
	var why error = errors.New("not connected yet")
	if p := b.initErr.Load(); p != nil {
		why = *p
	}
	return nil, fmt.Errorf("vault: %w: no contact with Vault since start: %v", backends.ErrUnavailable, why)
}

// Close stops the background goroutine. It does not revoke meshca's token.
func (b *Backend) Close() error {
	b.cancel()
	<-b.done
	return nil
}

func signPath(c *Config) string {
	p := c.Mount
	if c.IssuerRef != "" {
		p += "/issuer/" + c.IssuerRef
	}
	if c.Mode == ModeSignVerbatim {
		p += "/sign-verbatim"
		if c.Role != "" {
			p += "/" + c.Role
		}
		return p
	}
	return p + "/sign/" + c.Role
}

// newClient builds a Vault client that takes nothing from the environment (VAULT_TOKEN, VAULT_NAMESPACE,
// VAULT_SKIP_VERIFY...) and never retries: the backend reports failures quickly and the core decides.
func newClient(cfg *Config) (*api.Client, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.TLS.ServerName,
		InsecureSkipVerify: cfg.TLS.InsecureSkipVerify} //nolint:gosec // opt-in, logged as an error
	caPEM := []byte(cfg.TLS.CAPEM)
	if cfg.TLS.CAFile != "" {
		var err error
		if caPEM, err = cfg.ReadFile(cfg.TLS.CAFile); err != nil {
			return nil, fmt.Errorf("vault: reading tls.caFile: %w", err)
		}
	}
	if len(caPEM) > 0 {
		certs, err := backends.ParseCertificates(caPEM)
		if err != nil {
			return nil, fmt.Errorf("vault: TLS CA bundle: %w", err)
		}
		tlsCfg.RootCAs = x509.NewCertPool()
		for _, c := range certs {
			tlsCfg.RootCAs.AddCert(c)
		}
	}
	transport := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: cfg.Timeout,
		MaxIdleConns:        100,
		MaxIdleConnsPerHost: 100,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	hc := &http.Client{Transport: transport, Timeout: cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	c, err := api.NewClient(&api.Config{Address: cfg.Address, HttpClient: hc, MaxRetries: 0, Timeout: cfg.Timeout})
	if err != nil {
		return nil, fmt.Errorf("vault: creating client for %s: %w", cfg.Address, err)
	}
	c.SetHeaders(http.Header{api.RequestHeaderName: []string{"true"}}) // drop VAULT_HEADERS
	c.ClearToken()
	c.ClearNamespace()
	if cfg.Namespace != "" {
		c.SetNamespace(cfg.Namespace)
	}
	return c, nil
}

// Sign issues a certificate through Vault. Before anything is sent, every URI SAN must be a SPIFFE ID of the
// exact shape spiffe://<td>/ns/<ns>/sa/<sa>; afterwards the leaf must certify exactly req's key and SANs and
// chain to the trust anchors. A lifetime shorter than requested (Vault caps TTLs at the role's max_ttl
// without saying so) is logged as a warning.
func (b *Backend) Sign(ctx context.Context, req *backends.SignRequest) (*backends.SignResponse, error) {
	if err := b.checkRequest(req); err != nil {
		return nil, err
	}
	st, err := b.state()
	if err != nil {
		return nil, err
	}
	start := b.cfg.Clock()
	sec, err := b.write(ctx, "signing", b.signPath, b.signData(req))
	if err != nil {
		return nil, err
	}
	resp, err := b.parseSigned(sec, req, st, start)
	if err != nil {
		return nil, err
	}
	leaf := resp.Leaf()
	if want := start.Add(req.TTL); leaf.NotAfter.Before(want.Add(-2 * time.Second)) {
		b.cfg.Logger.Warn("vault issued a shorter lifetime than requested: raise the role's max_ttl (or renew the issuer if it expires sooner) or lower meshca's maximum TTL",
			"mount", b.cfg.Mount, "role", b.cfg.Role, "requested_ttl", req.TTL.String(),
			"granted_ttl", leaf.NotAfter.Sub(start).Round(time.Second).String(), "not_after", leaf.NotAfter.UTC(),
			"serial", serialHex(leaf.SerialNumber))
	}
	return resp, nil
}

// checkRequest refuses, before anything reaches Vault, what Vault must not be asked to sign.
func (b *Backend) checkRequest(req *backends.SignRequest) error {
	refuse := func(format string, args ...any) error {
		return fmt.Errorf("vault: %w: "+format, append([]any{backends.ErrRefused}, args...)...)
	}
	if req == nil || req.CSR == nil {
		return refuse("the request carries no CSR, and Vault signs only CSRs")
	}
	if k, ok := req.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !k.Equal(req.CSR.PublicKey) {
		return refuse("the public key to certify is not the CSR's key, and Vault certifies the CSR's key")
	}
	if req.TTL < time.Second {
		return refuse("ttl %s must be at least 1s", req.TTL)
	}
	if len(req.URIs) == 0 && len(req.DNSNames) == 0 && len(req.IPAddresses) == 0 {
		return refuse("the request has no SAN")
	}
	for _, u := range req.URIs {
		if _, err := csr.ParseURI(u); err != nil {
			return fmt.Errorf("vault: %w: URI SAN: %w", backends.ErrRefused, err)
		}
	}
	for _, d := range req.DNSNames {
		if d == "" || strings.ContainsAny(d, ", ") {
			return refuse("DNS SAN %q is empty or holds a comma or space", d)
		}
	}
	if strings.ContainsAny(req.Subject.CommonName, ",") {
		return refuse("common name %q holds a comma", req.Subject.CommonName)
	}
	if b.cfg.Mode == ModeSignVerbatim {
		// sign-verbatim copies the CSR's SANs: they must be exactly meshca's decision.
		if !sameStrings(uriStrings(req.CSR.URIs), uriStrings(req.URIs)) || !sameStrings(req.CSR.DNSNames, req.DNSNames) ||
			!sameStrings(ipStrings(req.CSR.IPAddresses), ipStrings(req.IPAddresses)) || len(req.CSR.EmailAddresses) > 0 {
			return refuse("mode sign-verbatim copies the CSR's SANs, and they differ from the SANs meshca decided")
		}
	}
	return nil
}

func (b *Backend) signData(req *backends.SignRequest) map[string]any {
	d := map[string]any{
		"csr":    string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: req.CSR.Raw})),
		"ttl":    fmt.Sprintf("%ds", int64(req.TTL/time.Second)),
		"format": "pem",
	}
	if b.cfg.Mode == ModeSignVerbatim {
		// Without ext_key_usage sign-verbatim issues no EKU at all; Istio needs both.
		d["ext_key_usage"] = []string{"ServerAuth", "ClientAuth"}
		d["key_usage"] = []string{"DigitalSignature", "KeyEncipherment"}
		return d
	}
	d["exclude_cn_from_sans"] = true
	if req.Subject.CommonName != "" {
		d["common_name"] = req.Subject.CommonName
	}
	if len(req.URIs) > 0 {
		d["uri_sans"] = uriStrings(req.URIs) // a comma-string-slice field: a JSON array is taken as is
	}
	if len(req.DNSNames) > 0 {
		d["alt_names"] = strings.Join(req.DNSNames, ",") // a plain string field: commas were refused above
	}
	if len(req.IPAddresses) > 0 {
		d["ip_sans"] = ipStrings(req.IPAddresses)
	}
	return d
}

// parseSigned reads Vault's sign response, checks the leaf against req and builds the chain. When the leaf
// was signed by the mount's known issuer, whose chain to the anchors was verified when it was fetched, only the
// leaf is verified (against that issuer) and Vault's ca_chain is not even parsed: signature checks dominate the
// backend's own cost. Otherwise the chain is rebuilt from everything Vault returned.
func (b *Backend) parseSigned(sec *api.Secret, req *backends.SignRequest, ca *caState, now time.Time) (*backends.SignResponse, error) {
	if sec == nil || sec.Data == nil {
		return nil, fmt.Errorf("vault: %w: empty response to %s", backends.ErrBadChain, b.signPath)
	}
	leaf, rest, err := parseLeaf(sec.Data)
	if err != nil {
		return nil, err
	}
	if err := checkLeaf(leaf, req); err != nil {
		return nil, err
	}
	at := now
	if at.Before(leaf.NotBefore) { // clocks disagree; the chain must still verify
		at = leaf.NotBefore
	}
	if chain, ok := ca.fastChain(leaf, at); ok {
		return &backends.SignResponse{Chain: chain}, nil
	}
	candidates, err := parseChainFields(sec.Data)
	if err != nil {
		return nil, err
	}
	candidates = append(append(rest, candidates...), ca.chain...)
	chain, err := buildChain(leaf, candidates, ca.anchors, at)
	if err != nil {
		return nil, fmt.Errorf("vault: certificate from %s: %w", b.signPath, err)
	}
	return &backends.SignResponse{Chain: chain}, nil
}

// parseIssued reads the certificate, issuing_ca and ca_chain fields of a sign or issuer response: the first
// block of certificate is the leaf (or the issuer), everything else is a chain candidate.
func parseIssued(data map[string]any) (*x509.Certificate, []*x509.Certificate, error) {
	first, rest, err := parseLeaf(data)
	if err != nil {
		return nil, nil, err
	}
	more, err := parseChainFields(data)
	if err != nil {
		return nil, nil, err
	}
	return first, append(rest, more...), nil
}

// parseLeaf reads the certificate field: the leaf first, then any further blocks (format pem_bundle).
func parseLeaf(data map[string]any) (*x509.Certificate, []*x509.Certificate, error) {
	certPEM, _ := data["certificate"].(string)
	if certPEM == "" {
		return nil, nil, fmt.Errorf("vault: %w: the response has no certificate", backends.ErrBadChain)
	}
	certs, err := backends.ParseCertificates([]byte(certPEM))
	if err != nil {
		return nil, nil, fmt.Errorf("vault: %w: certificate: %v", backends.ErrBadChain, err)
	}
	return certs[0], certs[1:], nil
}

// parseChainFields reads the issuing_ca and ca_chain fields, in whatever order and multiplicity Vault sent.
func parseChainFields(data map[string]any) ([]*x509.Certificate, error) {
	var extra []string
	if s, ok := data["issuing_ca"].(string); ok && s != "" {
		extra = append(extra, s)
	}
	switch v := data["ca_chain"].(type) {
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok {
				extra = append(extra, s)
			}
		}
	case []string:
		extra = append(extra, v...)
	}
	var out []*x509.Certificate
	for i, s := range extra {
		cs, err := backends.ParseCertificates([]byte(s))
		if err != nil {
			return nil, fmt.Errorf("vault: %w: ca_chain entry %d: %v", backends.ErrBadChain, i, err)
		}
		out = append(out, cs...)
	}
	return out, nil
}

// checkLeaf enforces the backend contract: the leaf certifies exactly req's key and SANs, is not a CA, and
// can serve both sides of Istio's mutual TLS.
func checkLeaf(leaf *x509.Certificate, req *backends.SignRequest) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("vault: %w: "+format, append([]any{backends.ErrBadChain}, args...)...)
	}
	if k, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !k.Equal(req.PublicKey) {
		return bad("the certificate does not certify the requested key")
	}
	if !sameStrings(uriStrings(leaf.URIs), uriStrings(req.URIs)) {
		return bad("URI SANs %q differ from the requested %q: set use_csr_sans=false on the role",
			uriStrings(leaf.URIs), uriStrings(req.URIs))
	}
	if !sameStrings(leaf.DNSNames, req.DNSNames) || !sameStrings(ipStrings(leaf.IPAddresses), ipStrings(req.IPAddresses)) ||
		len(leaf.EmailAddresses) > 0 {
		return bad("DNS/IP/email SANs %q %q %q differ from the requested %q %q: set use_csr_sans=false on the role",
			leaf.DNSNames, ipStrings(leaf.IPAddresses), leaf.EmailAddresses, req.DNSNames, ipStrings(req.IPAddresses))
	}
	if req.Subject.CommonName != "" && leaf.Subject.CommonName != req.Subject.CommonName {
		return bad("common name %q differs from the requested %q", leaf.Subject.CommonName, req.Subject.CommonName)
	}
	if leaf.IsCA {
		return bad("the certificate is a CA certificate")
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) || !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return bad("the certificate lacks the serverAuth and clientAuth extended key usages: set server_flag and client_flag on the role")
	}
	return nil
}

// Roots returns the trust anchors. It makes no call to Vault. Anchors pinned by fingerprint are known only once
// Vault has been reached; before that Roots fails with backends.ErrUnavailable.
func (b *Backend) Roots(context.Context) ([]*x509.Certificate, error) {
	if b.anchors != nil {
		return slices.Clone(b.anchors), nil
	}
	st, err := b.state()
	if err != nil {
		return nil, err
	}
	return slices.Clone(st.anchors), nil
}

// CAChain returns the mount's issuing CA chain, issuer first and root last, as last fetched.
func (b *Backend) CAChain(context.Context) ([]*x509.Certificate, error) {
	st, err := b.state()
	if err != nil {
		return nil, err
	}
	return slices.Clone(st.chain), nil
}

// Revoke revokes a certificate issued by the mount. It sends the certificate when req has it, which also works
// for no_store roles (Vault cannot find their certificates by serial), and the serial otherwise.
func (b *Backend) Revoke(ctx context.Context, req *backends.RevokeRequest) error {
	if _, err := b.state(); err != nil {
		return err
	}
	data := map[string]any{}
	switch {
	case req == nil:
		return fmt.Errorf("vault: %w: no certificate to revoke", backends.ErrRefused)
	case req.Certificate != nil:
		data["certificate"] = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: req.Certificate.Raw}))
	case req.SerialNumber != nil:
		data["serial_number"] = serialHex(req.SerialNumber)
	default:
		return fmt.Errorf("vault: %w: revocation needs a serial number or a certificate", backends.ErrRefused)
	}
	if _, err := b.write(ctx, "revoking", b.cfg.Mount+"/revoke", data); err != nil {
		if errors.Is(err, backends.ErrRefused) && req.Certificate == nil {
			return fmt.Errorf("%w (a no_store role's certificates can be revoked only by certificate, not by serial)", err)
		}
		return err
	}
	b.cfg.Logger.Info("vault revoked certificate", "mount", b.cfg.Mount, "serial", serialOf(req))
	return nil
}

func serialOf(req *backends.RevokeRequest) string {
	if req.Certificate != nil {
		return serialHex(req.Certificate.SerialNumber)
	}
	return serialHex(req.SerialNumber)
}

// CRL returns the issuer's current DER CRL (/v1/<mount>/crl, or the issuer's own with IssuerRef), after checking
// that it parses and is signed by the issuing CA.
func (b *Backend) CRL(ctx context.Context) ([]byte, error) {
	st, err := b.state()
	if err != nil {
		return nil, err
	}
	path := "/v1/" + b.cfg.Mount + "/crl"
	if b.cfg.IssuerRef != "" {
		path = "/v1/" + b.cfg.Mount + "/issuer/" + b.cfg.IssuerRef + "/crl/der"
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	resp, err := b.client.RawRequestWithContext(ctx, b.client.NewRequest(http.MethodGet, path))
	if resp != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		return nil, b.classify(ctx, "fetching the CRL", path, err)
	}
	der, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, b.classify(ctx, "reading the CRL", path, err)
	}
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("vault: the CRL at %s does not parse: %w", path, err)
	}
	if err := rl.CheckSignatureFrom(st.chain[0]); err != nil {
		return nil, fmt.Errorf("vault: the CRL at %s is not signed by the issuing CA: %w", path, err)
	}
	return der, nil
}

// Check reports whether Vault can sign now: it must be reachable, initialised and unsealed, and meshca's token
// must be valid.
func (b *Backend) Check(ctx context.Context) error {
	if _, err := b.state(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	h, err := b.client.Sys().HealthWithContext(ctx)
	if err != nil {
		return b.classify(ctx, "checking health", "sys/health", err)
	}
	if !h.Initialized || h.Sealed {
		return fmt.Errorf("vault: %w: Vault at %s is sealed or not initialised: unseal it", backends.ErrUnavailable, b.cfg.Address)
	}
	if _, err := b.client.Auth().Token().LookupSelfWithContext(ctx); err != nil {
		return b.classify(ctx, "looking up meshca's token", "auth/token/lookup-self", err)
	}
	return nil
}

// write sends one request with the backend's deadline. When Vault answers 403 and meshca can get a new token
// by itself (AppRole, Kubernetes, JWT login, or a rotated token file), it does so once and retries: the token
// may have been revoked, lost or rotated.
func (b *Backend) write(ctx context.Context, op, path string, data map[string]any) (*api.Secret, error) {
	for attempt := 0; ; attempt++ {
		used := b.client.Token()
		cctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
		sec, err := b.client.Logical().WriteWithContext(cctx, path, data)
		if err == nil {
			cancel()
			return sec, nil
		}
		err = b.classify(cctx, op, path, err)
		cancel()
		if attempt > 0 || !isDenied(err) || (b.cfg.Auth.Method == AuthToken && b.cfg.Auth.TokenFile == "") {
			return nil, err
		}
		if lerr := b.relogin(ctx, used); errors.Is(lerr, errTokenValid) {
			return nil, fmt.Errorf("%w (the token is valid: its policies do not allow %s)", err, path)
		} else if lerr != nil {
			// Only the first error's kind counts: the backend cannot sign for anyone (ErrUnavailable).
			return nil, fmt.Errorf("%w; logging in again failed: %v", err, lerr)
		}
	}
}

var errDenied = errors.New("permission denied")

func isDenied(err error) bool { return errors.Is(err, errDenied) }

// classify turns a client error into one wrapping backends.ErrUnavailable (no answer, 5xx, sealed, 429, 401/403:
// meshca's credentials no longer work, so this backend cannot sign for anyone) or backends.ErrRefused (any
// other 4xx: Vault declined this request).
func (b *Backend) classify(ctx context.Context, op, path string, err error) error {
	var re *api.ResponseError
	if errors.As(err, &re) {
		msg := strings.Join(re.Errors, "; ")
		switch {
		case re.StatusCode == http.StatusUnauthorized || re.StatusCode == http.StatusForbidden:
			return fmt.Errorf("vault: %s (%s): %w: %w: %s: check meshca's Vault credentials and that its policy allows this path",
				op, path, backends.ErrUnavailable, errDenied, msg)
		case re.StatusCode == http.StatusTooManyRequests || re.StatusCode >= 500:
			return fmt.Errorf("vault: %s (%s): %w: HTTP %d: %s", op, path, backends.ErrUnavailable, re.StatusCode, msg)
		case re.StatusCode >= 400:
			return fmt.Errorf("vault: %s (%s): %w: HTTP %d: %s", op, path, backends.ErrRefused, re.StatusCode, msg)
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("vault: %s (%s): %w: no answer within %s: %w", op, path, backends.ErrUnavailable, b.cfg.Timeout, err)
	}
	var tlsErr *tls.CertificateVerificationError
	if errors.As(err, &tlsErr) {
		return fmt.Errorf("vault: %s (%s): %w: Vault's TLS certificate is not trusted: check tls.caFile or tls.caPEM and tls.serverName: %w",
			op, path, backends.ErrUnavailable, err)
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &ne) || errors.As(err, &oe) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("vault: %s (%s): %w: %w", op, path, backends.ErrUnavailable, err)
	}
	return fmt.Errorf("vault: %s (%s): %w", op, path, err)
}

// refreshCAChain fetches the issuer's certificate and chain, orders them up to one of anchors, and installs
// the result.
func (b *Backend) refreshCAChain(ctx context.Context, anchors []*x509.Certificate) error {
	ref := b.cfg.IssuerRef
	if ref == "" {
		ref = "default"
	}
	path := b.cfg.Mount + "/issuer/" + ref + "/json"
	cctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	sec, err := b.client.Logical().ReadWithContext(cctx, path)
	if err != nil {
		return b.classify(cctx, "reading the issuer", path, err)
	}
	if sec == nil || sec.Data == nil {
		return fmt.Errorf("vault: %s not found: check mount and issuerRef, and that the mount has an issuer", path)
	}
	issuer, candidates, err := parseIssued(sec.Data)
	if err != nil {
		return fmt.Errorf("vault: issuer %s: %w", path, err)
	}
	chain := []*x509.Certificate{issuer}
	if !isAnchor(issuer, anchors) {
		if chain, err = buildChain(issuer, candidates, anchors, b.cfg.Clock()); err != nil {
			return fmt.Errorf("vault: issuer %s does not chain to the configured roots: %w", path, err)
		}
	}
	b.ca.Store(newCAState(chain, anchors))
	return nil
}

func (b *Backend) pins() [][32]byte {
	pins := make([][32]byte, 0, len(b.cfg.RootFingerprints))
	for _, s := range b.cfg.RootFingerprints {
		fp, _ := parseFingerprint(s) // validated
		pins = append(pins, fp)
	}
	return pins
}

// configuredAnchors reads the trust anchors from rootsFile or rootsPEM, checked against the pins if any. It
// returns nil when the anchors are to be found by fingerprint among the mount's issuers.
func (b *Backend) configuredAnchors() ([]*x509.Certificate, error) {
	var raw []byte
	switch {
	case b.cfg.RootsFile != "":
		var err error
		if raw, err = b.cfg.ReadFile(b.cfg.RootsFile); err != nil {
			return nil, fmt.Errorf("vault: reading rootsFile: %w", err)
		}
	case b.cfg.RootsPEM != "":
		raw = []byte(b.cfg.RootsPEM)
	default:
		return nil, nil
	}
	anchors, err := backends.ParseCertificates(raw)
	if err != nil {
		return nil, fmt.Errorf("vault: trust anchors: %w", err)
	}
	pins := b.pins()
	for _, a := range anchors {
		if len(pins) > 0 && !slices.Contains(pins, fingerprintBytes(a)) {
			return nil, fmt.Errorf("vault: trust anchor %q (sha256 %s) matches no rootFingerprints entry", a.Subject, Fingerprint(a))
		}
	}
	return anchors, nil
}

// pinnedAnchors finds the certificates pinned by rootFingerprints among the mount's issuers and their chains.
func (b *Backend) pinnedAnchors(ctx context.Context) ([]*x509.Certificate, error) {
	pins := b.pins()
	found, err := b.issuerCerts(ctx)
	if err != nil {
		return nil, err
	}
	var anchors []*x509.Certificate
	for _, pin := range pins {
		var hit *x509.Certificate
		for _, c := range found {
			if fingerprintBytes(c) == pin {
				hit = c
			}
		}
		if hit == nil {
			var seen []string
			for _, c := range found {
				seen = append(seen, fmt.Sprintf("%s (%q)", Fingerprint(c), c.Subject.String()))
			}
			return nil, fmt.Errorf("vault: no certificate with sha256 %x among the issuers of mount %s (found %s): import the root into the mount with the intermediate (intermediate/set-signed with the full chain) or configure rootsFile",
				pin, b.cfg.Mount, strings.Join(seen, ", "))
		}
		if !isAnchor(hit, anchors) {
			anchors = append(anchors, hit)
		}
	}
	return anchors, nil
}

// issuerCerts returns every certificate of every issuer of the mount, with their chains, without duplicates.
func (b *Backend) issuerCerts(ctx context.Context) ([]*x509.Certificate, error) {
	cctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	list, err := b.client.Logical().ListWithContext(cctx, b.cfg.Mount+"/issuers")
	if err != nil {
		return nil, b.classify(cctx, "listing issuers", b.cfg.Mount+"/issuers", err)
	}
	var keys []any
	if list != nil {
		keys, _ = list.Data["keys"].([]any)
	}
	var out []*x509.Certificate
	for _, k := range keys {
		id, _ := k.(string)
		if !validName(id) {
			continue
		}
		path := b.cfg.Mount + "/issuer/" + id + "/json"
		sec, err := b.client.Logical().ReadWithContext(cctx, path)
		if err != nil {
			return nil, b.classify(cctx, "reading the issuer", path, err)
		}
		if sec == nil {
			continue
		}
		c, rest, err := parseIssued(sec.Data)
		if err != nil {
			return nil, fmt.Errorf("vault: issuer %s: %w", path, err)
		}
		for _, x := range append([]*x509.Certificate{c}, rest...) {
			if !isAnchor(x, out) {
				out = append(out, x)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("vault: mount %s has no issuers: configure its CA first", b.cfg.Mount)
	}
	return out, nil
}

func fingerprintBytes(c *x509.Certificate) [32]byte { return sha256.Sum256(c.Raw) }

// serialHex formats a serial as Vault does: lowercase hex byte pairs joined by colons.
func serialHex(n *big.Int) string {
	if n == nil {
		return ""
	}
	b := n.Bytes()
	if len(b) == 0 {
		b = []byte{0}
	}
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02x", x)
	}
	return strings.Join(parts, ":")
}

func uriStrings[U interface{ String() string }](us []U) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.String()
	}
	return out
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}

// sameStrings reports whether a and b hold the same strings, ignoring order.
func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}
