package loadtest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/mldsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"

	"github.com/meshca/meshca/csr"
	"github.com/meshca/meshca/csr/composite"
	"github.com/meshca/meshca/internal/devtoken"
)

// identity is one simulated workload (an identity, or one of its pods with Config.PodsPerIdentity): its
// SPIFFE ID, service-account token and what the token claims.
type identity struct {
	id     *url.URL
	token  string
	claims devtoken.Claims
}

// prepared is one request's CSR and the public key it must be issued for.
type prepared struct {
	csr []byte
	pub crypto.PublicKey
}

// outcome is what happened to one sent request.
type outcome struct {
	latency time.Duration
	retries int
	code    codes.Code
	msg     string // error message, or why the response is invalid
	invalid bool
}

// runner holds one run's state; outcomes[i] is written only by request i's goroutine.
type runner struct {
	cfg      Config
	ids      []identity
	prepared []prepared
	tokens   []string // per request, with FreshTokens
	outcomes []outcome
	clients  []pb.IstioCertificateServiceClient
	// connect, in a storm, opens a new connection for one request; nil dials cfg.Addr.
	connect func() (pb.IstioCertificateServiceClient, func(), error)
	live    live
	retries atomic.Int64
}

// Run sends cfg.Rate requests per second for cfg.Duration and reports what happened. Tokens, keys and
// connections are prepared before the timer starts. If ctx ends early, Run stops scheduling, waits for the
// requests in flight and returns the partial result with Interrupted set. Errors are for runs that could not
// start (bad config, meshca unreachable, TLS verification failed); failed requests are counted in the Result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	return run(ctx, cfg, nil)
}

// run is Run with an optional client replacing the gRPC connections (tests of the scheduler).
func run(ctx context.Context, cfg Config, client pb.IstioCertificateServiceClient) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	cfg = cfg.withDefaults()
	r := &runner{cfg: cfg}
	var err error
	prepStart := time.Now()
	if err := r.mintTokens(); err != nil {
		return nil, err
	}
	n := cfg.requests()
	r.outcomes = make([]outcome, n)
	if !cfg.GenerateKeysInline {
		if err := r.prepareAll(ctx, n); err != nil {
			return nil, err
		}
	}
	storm := cfg.Scenario == ScenarioStorm
	switch {
	case client != nil:
		r.clients = []pb.IstioCertificateServiceClient{client}
		r.connect = func() (pb.IstioCertificateServiceClient, func(), error) { return client, func() {}, nil }
	case storm:
		conns, err := dial(ctx, cfg, 1) // proves the address and the roots before the timer
		if err != nil {
			return nil, err
		}
		conns[0].Close()
	default:
		conns, err := dial(ctx, cfg, cfg.Connections)
		if err != nil {
			return nil, err
		}
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for _, c := range conns {
			r.clients = append(r.clients, pb.NewIstioCertificateServiceClient(c))
		}
	}
	prepare := time.Since(prepStart)

	var proc0 procStats
	if cfg.ServerPID != 0 {
		if proc0, err = readProc(cfg.ServerPID); err != nil {
			return nil, fmt.Errorf("loadtest: %w", err)
		}
	}
	var watch *serverWatch
	if cfg.ServerMetrics != "" {
		var err error
		if watch, err = watchServer(ctx, cfg.ServerMetrics); err != nil {
			return nil, err
		}
	}
	var sent []int
	var dropped int
	var elapsed time.Duration
	var interrupted bool
	if storm {
		sent, elapsed, interrupted = r.storm(ctx, n)
	} else {
		sent, dropped, elapsed, interrupted = r.schedule(ctx, n)
	}
	res := summarize(cfg, r.outcomes, sent, dropped, elapsed)
	res.Scheduled = len(sent) + dropped
	res.Prepare = prepare
	res.Interrupted = interrupted
	res.Identities = cfg.Namespaces * cfg.ServiceAccounts
	if cfg.PodsPerIdentity > 0 {
		res.Pods = len(r.ids)
	}
	res.Scenario = cfg.Scenario
	res.Retries = int(r.retries.Load())
	if watch != nil {
		if res.Server, err = watch.finish(context.WithoutCancel(ctx), res.OK); err != nil {
			return nil, err
		}
		res.Server.Source = "metrics"
	}
	if cfg.ServerPID != 0 {
		proc1, err := readProc(cfg.ServerPID)
		if err != nil {
			return nil, fmt.Errorf("loadtest: %w", err)
		}
		if res.Server == nil {
			res.Server = &ServerStats{}
		}
		res.Server.CPUSeconds, res.Server.PeakRSS = proc1.cpuSeconds-proc0.cpuSeconds, proc1.peakRSS
		res.Server.CPUPerOK, res.Server.Source = 0, "proc"
		if res.OK > 0 {
			res.Server.CPUPerOK = res.Server.CPUSeconds / float64(res.OK) * 1e6
		}
	}
	return res, nil
}

// mintTokens creates the workloads (identities, or their pods) and one token each, valid for the whole run.
func (r *runner) mintTokens() error {
	c := r.cfg
	ttl := c.Duration + c.Timeout + 10*time.Minute
	r.ids = make([]identity, 0, c.workloads())
	for ns := range c.Namespaces {
		for sa := range c.ServiceAccounts {
			nsName, saName := fmt.Sprintf("%s-%d", c.NamespacePrefix, ns), fmt.Sprintf("sa-%d", sa)
			id := spiffeID(c.TrustDomain, nsName, saName)
			pods, err := c.podsOf(devtoken.Claims{Namespace: nsName, ServiceAccount: saName,
				Audiences: []string{c.Audience}, TTL: ttl}, ns*c.ServiceAccounts+sa)
			if err != nil {
				return err
			}
			for _, cl := range pods {
				tok, err := c.Tokens.Mint(cl)
				if err != nil {
					return fmt.Errorf("loadtest: minting a token: %w", err)
				}
				r.ids = append(r.ids, identity{id: id, token: tok, claims: cl})
			}
		}
	}
	if !c.FreshTokens {
		return nil
	}
	n := c.requests()
	r.tokens = make([]string, n)
	for i := range n {
		tok, err := c.Tokens.Mint(r.owner(i).claims)
		if err != nil {
			return fmt.Errorf("loadtest: minting a token: %w", err)
		}
		r.tokens[i] = tok
	}
	return nil
}

// token is the token request i carries: its own with FreshTokens, else its owner's.
func (r *runner) token(i int) string {
	if r.tokens != nil {
		return r.tokens[i]
	}
	return r.owner(i).token
}

func spiffeID(td, ns, sa string) *url.URL {
	return csr.Identity{TrustDomain: td, Namespace: ns, ServiceAccount: sa}.URI()
}

// owner is the workload whose token request i carries; workloads take turns.
func (r *runner) owner(i int) identity { return r.ids[i%len(r.ids)] }

// foreign reports whether request i asks for an identity other than its token's: ForeignFraction of the
// requests, spread evenly.
func (r *runner) foreign(i int) bool {
	f := r.cfg.ForeignFraction
	return int(float64(i+1)*f) > int(float64(i)*f)
}

// asked is the SPIFFE ID request i's CSR asks for: its owner's, or for a foreign request the next identity's
// (another workload's), or a made-up one when there is only one identity.
func (r *runner) asked(i int) *url.URL {
	own := r.owner(i)
	if !r.foreign(i) {
		return own.id
	}
	if per := max(r.cfg.PodsPerIdentity, 1); len(r.ids) > per { // an identity's pods are consecutive
		return r.ids[(i%len(r.ids)+per)%len(r.ids)].id
	}
	u := *own.id
	u.Path += "-foreign"
	return &u
}

// prepareAll makes every request's key and CSR on all CPUs before the timer; with CSRPool, only the pool's,
// which the requests then share round-robin.
func (r *runner) prepareAll(ctx context.Context, n int) error {
	total := n
	if pool := r.cfg.CSRPool; pool > 0 && pool < n {
		k := len(r.ids)
		n = min((pool+k-1)/k*k, n) // request i and pool entry i%n are for the same identity
	}
	if err := r.prepareN(ctx, n); err != nil {
		return err
	}
	for i := n; i < total; i++ {
		r.prepared = append(r.prepared, r.prepared[i%n])
	}
	return nil
}

func (r *runner) prepareN(ctx context.Context, n int) error {
	r.prepared = make([]prepared, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, runtime.GOMAXPROCS(0))
	for w := range errs {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				p, err := newCSR(r.cfg.Key, r.asked(i))
				if err != nil {
					errs[w] = err
					return
				}
				r.prepared[i] = p
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("loadtest: preparing CSRs: %w", err)
	}
	return ctx.Err()
}

var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// newCSR returns a CSR shaped like istio-agent's (pkiutil.GenCSR): subject O="", and one URI SAN in a
// critical subjectAltName extension (critical because the subject is empty, RFC 5280 §4.2.1.6).
func newCSR(kt KeyType, id *url.URL) (prepared, error) {
	var key crypto.Signer
	var err error
	switch kt {
	case KeyRSA2048:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case KeyMLDSA65:
		key, err = mldsa.GenerateKey(mldsa.MLDSA65())
	case KeyComposite:
		key, err = composite.GenerateKey(composite.MLDSA65ECDSAP256SHA512(), nil)
	default:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return prepared{}, err
	}
	san, err := asn1.Marshal([]asn1.RawValue{{Tag: 6, Class: asn1.ClassContextSpecific, Bytes: []byte(id.String())}})
	if err != nil {
		return prepared{}, err
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{Organization: []string{""}},
		ExtraExtensions: []pkix.Extension{{Id: oidSubjectAltName, Critical: true, Value: san}}}
	var der []byte
	if k, ok := key.(*composite.PrivateKey); ok { // crypto/x509 cannot sign with a composite key
		der, err = composite.CreateCertificateRequest(rand.Reader, tmpl, k)
	} else {
		der, err = x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	}
	if err != nil {
		return prepared{}, err
	}
	return prepared{
		csr: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
		pub: key.Public(),
	}, nil
}

// ErrConnect means the load tester could not open a verified connection to meshca: wrong address, a serving
// certificate that does not chain to Config.Roots, or a server name it does not hold. Nothing was sent.
var ErrConnect = errors.New("cannot connect to meshca")

// dial opens cfg.Connections connections verifying meshca's serving certificate against cfg.Roots, and proves
// each with a health check so that a wrong root or address fails here, before the timer.
func dial(ctx context.Context, cfg Config, n int) ([]*grpc.ClientConn, error) {
	var conns []*grpc.ClientConn
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	for range n {
		c, err := newConn(cfg)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("loadtest: %w", err)
		}
		conns = append(conns, c)
		hctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		_, err = healthpb.NewHealthClient(c).Check(hctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err != nil && status.Code(err) != codes.Unimplemented {
			closeAll()
			return nil, fmt.Errorf("loadtest: %w at %s (check --addr, --root and --server-name): %w",
				ErrConnect, cfg.Addr, err)
		}
	}
	return conns, nil
}

// newConn returns a lazily connecting gRPC client that verifies meshca's serving certificate against
// cfg.Roots, as istio-agent does.
func newConn(cfg Config) (*grpc.ClientConn, error) {
	tc := &tls.Config{RootCAs: cfg.Roots, ServerName: cfg.ServerName, MinVersion: tls.VersionTLS12}
	return grpc.NewClient(cfg.Addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
}

// schedule sends request i at start + i/Rate on a ticker, whatever the responses do, unless Concurrency
// requests are in flight, in which case request i is dropped. It returns the indexes sent, the number dropped,
// the time from start until the later of Duration and the last response, and whether ctx ended the run early.
func (r *runner) schedule(ctx context.Context, n int) (sent []int, dropped int, elapsed time.Duration,
	interrupted bool) {
	c := r.cfg
	base := context.WithoutCancel(ctx) // requests in flight finish (within Timeout) even when ctx ends
	slots := make(chan struct{}, c.Concurrency)
	var wg sync.WaitGroup
	tick := time.Duration(float64(time.Second) / c.Rate)
	tick = max(tick, time.Millisecond) // faster rates send several requests per tick
	ticker := time.NewTicker(tick)
	defer ticker.Stop()

	start := time.Now()
	if c.Progress != nil {
		stop, reported := make(chan struct{}), make(chan struct{})
		go func() { r.live.report(c.Progress, start, stop); close(reported) }()
		defer func() { close(stop); <-reported }()
	}
	next := 0
	for next < n {
		due := min(int(time.Since(start).Seconds()*c.Rate)+1, n)
		for ; next < due; next++ {
			select {
			case slots <- struct{}{}:
				sent = append(sent, next)
				i := next
				r.live.start()
				wg.Go(func() {
					defer func() { <-slots }()
					r.outcomes[i] = r.send(base, r.clients[i%len(r.clients)], i)
					r.live.done(r.outcomes[i])
				})
			default:
				dropped++
			}
		}
		if next >= n {
			break
		}
		select {
		case <-ctx.Done():
			interrupted = true
		case <-ticker.C:
		}
		if interrupted {
			break
		}
	}
	if !interrupted {
		select { // the last request is due at Duration - 1/Rate; the run lasts Duration
		case <-ctx.Done():
		case <-time.After(time.Until(start.Add(c.Duration))):
		}
	}
	wg.Wait()
	return sent, dropped, time.Since(start), interrupted
}
