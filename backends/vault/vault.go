package vault

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/hashicorp/vault/api"
	"golang.org/x/sync/singleflight"

	"github.com/meshca/meshca/backends"
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
		cfg.Logger.Error("vault: TLS verification of Vault's certificate is OFF (tls.insecureSkipVerify): anyone "+
			"on the path can impersonate Vault and read meshca's token",
			"address", cfg.Address)
	}
	if cfg.Mode == ModeSignVerbatim {
		cfg.Logger.Warn("vault: mode sign-verbatim copies the CSR's subject and extensions into the certificate; "+
			"meshca refuses every leaf that is not exactly the requested workload certificate, istio-agent's CSRs "+
			"(subject O=<trust domain>) included: use mode sign with a role (docs/vault.md)", "mount", cfg.Mount)
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
		return fmt.Errorf("vault: %w: Vault at %s is sealed or not initialised: unseal it", backends.ErrUnavailable,
			b.cfg.Address)
	}
	if _, err := b.client.Auth().Token().LookupSelfWithContext(ctx); err != nil {
		return b.classify(ctx, "looking up meshca's token", "auth/token/lookup-self", err)
	}
	return nil
}
