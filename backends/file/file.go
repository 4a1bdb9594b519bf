package file

import (
	"context"
	"crypto/mldsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/csr/composite"
)

// Config configures the file backend.
type Config struct {
	// Dir is the cacerts directory (for example the mounted istio-system/cacerts Secret). Exactly one of Dir and
	// Secret is set.
	Dir string `json:"dir,omitempty"`
	// Secret names the cacerts Secret as "namespace/name" (e.g. "istio-system/cacerts"), read and watched
	// through the API server with Kube instead of a mounted directory. Its keys are the file names below.
	Secret string `json:"secret,omitempty"`
	// SecretSyncTimeout bounds the wait for the first read of Secret. Default 30s.
	SecretSyncTimeout time.Duration `json:"secretSyncTimeout,omitempty"`
	// ReloadInterval is how often the files of Dir are checked for changes. Default 5s. A Secret is watched.
	ReloadInterval time.Duration `json:"reloadInterval,omitempty"`
	// Backdate moves NotBefore into the past to tolerate clock skew between nodes. Default 30s.
	Backdate time.Duration `json:"backdate,omitempty"`
	// MLDSADir, when set, is a second cacerts directory whose CA has an ML-DSA key: CSRs with ML-DSA keys are
	// signed by it (and only by it), and its roots are published apart (PostQuantumRoots). Needs Dir.
	MLDSADir string `json:"mldsaDir,omitempty"`
	// CompositeDir, when set, is a third cacerts directory whose CA has a composite ML-DSA-65 + ECDSA-P256 key
	// (draft-ietf-lamps-pq-composite-sigs, experimental): CSRs with composite keys are signed by it (and only by
	// it), and its roots are published apart (CompositeRoots). Needs Dir.
	CompositeDir string `json:"compositeDir,omitempty"`
	// CRLDistributionPoints are http (or ldap) URLs put in the cRLDistributionPoints extension of every
	// classical leaf (RFC 5280 §4.2.1.13). Each must serve the DER CRL of this backend's issuing CA, such as
	// meshca's /crl when this is the first backend. Default none; serve --dev sets its own /crl.
	CRLDistributionPoints []string `json:"crlDistributionPoints,omitempty"`
	// NextDir, when set, is a second cacerts directory holding the next CA of a root rotation (in a cluster the
	// optional cacerts-next Secret): loaded, checked and reloaded as Dir is; missing or empty means none. Which
	// of the two CAs signs is SigningRoot's choice, so meshca switches the signing CA itself
	// (docs/root-rotation.md).
	NextDir string `json:"nextDir,omitempty"`

	// SigningRoot, with NextDir, returns the root the signing CA must chain to (the rotation state's, shared
	// by every replica), or nil for the CA of Dir or Secret as without NextDir.
	SigningRoot func() *x509.Certificate `json:"-"`

	// Clock returns the current time; default time.Now.
	Clock func() time.Time `json:"-"`
	// Logger receives reload events; default slog.Default().
	Logger *slog.Logger `json:"-"`
	// Registerer, when set, receives the backend's reload metrics.
	Registerer prometheus.Registerer `json:"-"`
	// Kube reads Secret; required with it.
	Kube kubernetes.Interface `json:"-"`
}

// Validate reports every problem with c at once. It has no side effects.
func (c *Config) Validate() error {
	var errs []error
	switch {
	case c.Dir == "" && c.Secret == "":
		errs = append(errs, errors.New("file: dir or secret is required: the cacerts directory or the "+
			"\"namespace/name\" of the cacerts Secret"))
	case c.Dir != "" && c.Secret != "":
		errs = append(errs, errors.New("file: set only one of dir and secret"))
	case c.Secret != "":
		if _, _, err := splitSecret(c.Secret); err != nil {
			errs = append(errs, err)
		}
	}
	if c.SecretSyncTimeout < 0 {
		errs = append(errs, errors.New("file: secretSyncTimeout must not be negative"))
	}
	if c.ReloadInterval < 0 {
		errs = append(errs, errors.New("file: reloadInterval must not be negative"))
	}
	if c.MLDSADir != "" && c.Dir == "" {
		errs = append(errs, errors.New("file: mldsaDir goes with dir (a cacerts directory), not secret"))
	}
	if c.NextDir != "" && (c.NextDir == c.Dir || c.NextDir == c.MLDSADir || c.NextDir == c.CompositeDir) {
		errs = append(errs, errors.New("file: nextDir must be a directory of its own, not dir, mldsaDir or "+
			"compositeDir"))
	}
	if c.CompositeDir != "" && c.Dir == "" {
		errs = append(errs, errors.New("file: compositeDir goes with dir (a cacerts directory), not secret"))
	}
	if err := backends.ValidateDistributionPoints(c.CRLDistributionPoints); err != nil {
		errs = append(errs, fmt.Errorf("file: crlDistributionPoints: %w", err))
	}
	if c.Backdate < 0 || c.Backdate > time.Hour {
		errs = append(errs, errors.New("file: backdate must be between 0 and 1h"))
	}
	return errors.Join(errs...)
}

// WithDefaults returns c with every unset setting at the default New applies (for meshca config print
// --defaults).
func (c Config) WithDefaults() Config {
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.ReloadInterval == 0 {
		c.ReloadInterval = 5 * time.Second
	}
	if c.Backdate == 0 {
		c.Backdate = 30 * time.Second
	}
	if c.SecretSyncTimeout == 0 {
		c.SecretSyncTimeout = 30 * time.Second
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Backend signs with a CA held in files or in a Secret. It implements backends.Backend, CRLSigner, Checker and
// Chainer.
type Backend struct {
	cfg     Config
	origin  string                            // "dir <path>" or "secret <ns>/<name>", for logs and errors
	read    func() (map[string][]byte, error) // the source's current cacerts files
	current atomic.Pointer[authority]
	reloads *prometheus.CounterVec
	reload  sync.Mutex // serialises Reload; never held while signing
	cancel  context.CancelFunc
	done    chan struct{}
	mldsa   *Backend // the ML-DSA CA of MLDSADir, or nil
	hybrid  *Backend // the composite CA of CompositeDir, or nil

	next     nextCA                    // the CA of NextDir
	sel      atomic.Pointer[selection] // the last choice between current and next
	nextDone chan struct{}             // closed when nextDir polling ends (at once without NextDir)
}

var (
	_ backends.Backend   = (*Backend)(nil)
	_ backends.CRLSigner = (*Backend)(nil)

	_ backends.DistributionPointer = (*Backend)(nil)
	_ backends.Checker             = (*Backend)(nil)
	_ backends.Chainer             = (*Backend)(nil)

	_ backends.PostQuantumRooter = (*Backend)(nil)
	_ backends.CompositeRooter   = (*Backend)(nil)
)

// New loads the CA from cfg.Dir or cfg.Secret and starts watching it until Close is called or ctx ends. It
// fails when the files do not form a usable CA.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Secret != "" && cfg.Kube == nil {
		return nil, errors.New("file: secret needs a Kubernetes client")
	}
	cfg.setDefaults()
	b := &Backend{cfg: cfg, done: make(chan struct{}), nextDone: make(chan struct{})}
	b.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshca_file_ca_reloads_total",
		Help: "Reloads of the file backend's cacerts directory or Secret by result (success, error, " +
			"crl_refused: the CA loaded, its ca-crl.pem was refused).",
	}, []string{"result"})
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(b.reloads); err != nil {
			return nil, fmt.Errorf("file: registering metrics: %w", err)
		}
	}
	ctx, b.cancel = context.WithCancel(ctx)
	var sw *secretWatch
	if cfg.Secret != "" {
		var err error
		if sw, err = startSecretWatch(ctx, cfg); err != nil {
			b.cancel()
			return nil, err
		}
		b.origin, b.read = "secret "+cfg.Secret, sw.files
	} else {
		b.origin, b.read = "dir "+cfg.Dir, func() (map[string][]byte, error) { return readDir(cfg.Dir) }
	}
	files, err := b.read()
	var a *authority
	if err == nil {
		a, err = parseAuthority(files, cfg.Clock())
	}
	if err != nil {
		b.cancel()
		if sw != nil {
			sw.wait()
		}
		return nil, fmt.Errorf("file: loading %s: %w", b.origin, err)
	}
	a.digest = digestFiles(files)
	b.current.Store(a)
	if cfg.NextDir != "" {
		if _, err := b.reloadNext(); err != nil {
			b.cancel()
			return nil, err
		}
	}
	if cfg.MLDSADir != "" {
		if b.mldsa, err = newMLDSA(ctx, cfg); err != nil {
			b.cancel()
			return nil, err
		}
	}
	if cfg.CompositeDir != "" {
		if b.hybrid, err = newComposite(ctx, cfg); err != nil {
			b.cancel()
			if b.mldsa != nil {
				_ = b.mldsa.Close()
			}
			return nil, err
		}
	}
	cfg.Logger.Info("file backend loaded CA", "source", b.origin, "subject", a.cert.Subject.String(),
		"not_after", a.cert.NotAfter.UTC(), "roots", len(a.roots))
	b.noteCRL(a)
	if cfg.NextDir != "" {
		go b.poll(ctx, b.nextDone, b.reloadNext)
	} else {
		close(b.nextDone)
	}
	if sw != nil {
		go func() {
			defer close(b.done)
			sw.run(ctx, func() { _, _ = b.Reload() })
		}()
	} else {
		go b.poll(ctx, b.done, b.Reload)
	}
	return b, nil
}

// Close stops watching the files or the Secret.
func (b *Backend) Close() error {
	b.cancel()
	<-b.done
	<-b.nextDone
	var errs []error
	for _, sub := range []*Backend{b.mldsa, b.hybrid} {
		if sub != nil {
			errs = append(errs, sub.Close())
		}
	}
	return errors.Join(errs...)
}

// poll calls reload every ReloadInterval until ctx ends, then closes done.
func (b *Backend) poll(ctx context.Context, done chan struct{}, reload func() (bool, error)) {
	defer close(done)
	t := time.NewTicker(b.cfg.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = reload()
		}
	}
}

// Reload re-reads the files (or the watched Secret's latest state) now. It reports whether a new CA was
// activated; on error the active CA is kept.
func (b *Backend) Reload() (bool, error) {
	b.reload.Lock()
	defer b.reload.Unlock()
	files, err := b.read()
	var digest [sha256.Size]byte
	if err == nil {
		digest = digestFiles(files)
	}
	old := b.current.Load()
	if err == nil && digest == old.digest {
		return false, nil
	}
	var a *authority
	if err == nil {
		a, err = parseAuthority(files, b.cfg.Clock())
	}
	if err == nil {
		next := b.next.cur.Load()
		err = b.keepsSigningCA(old, next, a, next)
	}
	if err != nil {
		b.reloads.WithLabelValues("error").Inc()
		b.cfg.Logger.Error("file backend refused new CA files; the previous CA stays active",
			"source", b.origin, "error", err)
		return false, fmt.Errorf("file: reloading %s: %w", b.origin, err)
	}
	a.digest = digest
	b.current.Store(a)
	b.reloads.WithLabelValues("success").Inc()
	b.cfg.Logger.Info("file backend activated new CA", "source", b.origin, "subject", a.cert.Subject.String(),
		"not_after", a.cert.NotAfter.UTC(), "roots", len(a.roots))
	b.noteCRL(a)
	return true, nil
}

// noteCRL logs and counts a refused ca-crl.pem of a; the CA is in use without it.
func (b *Backend) noteCRL(a *authority) {
	if a.crlErr != nil {
		b.reloads.WithLabelValues("crl_refused").Inc()
		b.cfg.Logger.Error("file backend refused ca-crl.pem; the CA is in use, its CRLs are not (the last good "+
			"ones stay published while valid)", "source", b.origin, "error", a.crlErr)
	}
}

// Sign issues a certificate with the active CA. The lifetime is cut to the CA certificate's own expiry. The
// leaf is checked with backends.CheckLeaf before it is returned.
func (b *Backend) Sign(ctx context.Context, req *backends.SignRequest) (*backends.SignResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("file: %w: %v", backends.ErrUnavailable, err)
	}
	if want, have := kindOfKey(req.PublicKey), b.kind(); want != have {
		if sub := b.caFor(want); sub != nil {
			return sub.Sign(ctx, req)
		}
		return nil, fmt.Errorf("file: %w: no CA for a %s key here; %s", backends.ErrRefused, want, want.needs())
	}
	a, err := b.active()
	if err != nil {
		return nil, err
	}
	tmpl, err := leafTemplate(req, a.cert, b.cfg.Clock(), b.cfg.Backdate)
	if err != nil {
		return nil, fmt.Errorf("file: %w", err)
	}
	tmpl.CRLDistributionPoints = b.CRLDistributionPoints(req)
	der, err := a.createCertificate(tmpl, req.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("file: signing: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("file: parsing the certificate just signed: %w", err)
	}
	chain := make([]*x509.Certificate, 0, len(a.chain)+1)
	chain = append(chain, leaf)
	chain = append(chain, a.chain...)
	if err := backends.CheckLeafFrom(b, req, chain); err != nil {
		return nil, fmt.Errorf("file: %w", err)
	}
	// CreateCertificate verified the signature with a.cert's key; chain[1] is a.cert (buildChain starts with it).
	// a.roots are the roots of this very CA, even when a reload replaces it before the core checks the chain.
	return &backends.SignResponse{Chain: chain, SelfChecked: &backends.SelfCheck{Leaf: leaf, Issuer: a.cert},
		Roots: a.roots}, nil
}

// CRLDistributionPoints implements backends.DistributionPointer: the URLs of Config.CRLDistributionPoints for
// a classical key, none for an ML-DSA or composite key (the CAs of mldsaDir and compositeDir have no CRL at
// those URLs).
func (b *Backend) CRLDistributionPoints(req *backends.SignRequest) []string {
	switch req.PublicKey.(type) {
	case *mldsa.PublicKey, *composite.PublicKey:
		return nil
	}
	return b.cfg.CRLDistributionPoints
}

// Roots returns the trust anchors of the signing CA's root-cert.pem (of Dir or Secret, or of NextDir once the
// rotation signs with the next CA).
func (b *Backend) Roots(context.Context) ([]*x509.Certificate, error) {
	return b.activeOrCurrent().roots, nil
}

// CAChain returns the signing CA's chain, signing CA first and root last.
func (b *Backend) CAChain(context.Context) ([]*x509.Certificate, error) {
	return b.activeOrCurrent().chain, nil
}

// Check reports whether the active CA can still sign: there is one for the rotation's signing root, and its
// certificate is within its validity period.
func (b *Backend) Check(context.Context) error {
	a, err := b.active()
	if err != nil {
		return err
	}
	if now := b.cfg.Clock(); now.After(a.cert.NotAfter) {
		return fmt.Errorf("file: CA certificate %q expired at %s: install a new cacerts set", a.cert.Subject,
			a.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// SignCRL signs rl with the active CA.
func (b *Backend) SignCRL(_ context.Context, rl *x509.RevocationList) ([]byte, error) {
	a, err := b.active()
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateRevocationList(rand.Reader, rl, a.cert, a.signer)
	if err != nil {
		return nil, fmt.Errorf("file: signing CRL: %w", err)
	}
	return der, nil
}
