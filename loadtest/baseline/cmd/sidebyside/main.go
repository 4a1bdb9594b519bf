// Command sidebyside is `make bench`: it measures, in one run on one machine, the stdlib and essential floors,
// istiod's CA (IstioCA.Sign in-process, and its gRPC CA server end to end) and meshca (its issuance core
// in-process, and `meshca serve --dev` end to end), with RSA-2048 and ECDSA P-256 CSRs, and prints the tables
// and ratios of BENCHMARKS.md as Markdown. CPU per issuance comes from process accounting (getrusage here, the
// server's own process_cpu_seconds_total end to end).
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	istioca "istio.io/istio/security/pkg/pki/ca"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/internal/devtoken"
	"github.com/meshca/meshca/loadtest"
	"github.com/meshca/meshca/loadtest/baseline"
)

// Case names, shared by the tables and the ratios.
const (
	caseStdlib      = "stdlib floor"
	caseEssential   = "essential floor"
	caseIstioSign   = "istiod IstioCA.Sign"
	caseMeshcaIssue = "meshca Issuer.Issue"
)

// options are the command's flags.
type options struct {
	meshca, istio, commit string
	n, rsaPool            int
	rate                  float64
	duration              time.Duration
	storm, stormInFlight  int
	steady                int
	steadyEvery           time.Duration
	e2e                   bool
	keys                  string
}

// setup is what every case shares: one dev directory (CA and token issuer) for all.
type setup struct {
	opts     options
	dir      string
	td       string
	dev      *devtoken.Minter
	tokenKey *ecdsa.PublicKey
	signer   *baseline.CA
	istio    *istioca.IstioCA
	issuer   *ca.Issuer
	roots    *x509.CertPool
}

func main() {
	var o options
	flag.StringVar(&o.meshca, "meshca", "bin/meshca", "meshca `binary`")
	flag.StringVar(&o.istio, "istio-ca-server", "bin/istio-ca-server", "istio-ca-server `binary` (this module)")
	flag.StringVar(&o.commit, "commit", "", "meshca commit measured, for the report")
	flag.IntVar(&o.n, "n", 2000, "in-process issuances per case and key type")
	flag.IntVar(&o.rsaPool, "rsa-pool", 64, "RSA-2048 keys made (and shared by the CSRs, each for its own identity)")
	flag.Float64Var(&o.rate, "rate", 2000, "end to end: offered requests/s (above both servers' peak here)")
	flag.DurationVar(&o.duration, "duration", 8*time.Second, "end to end: length of each run")
	flag.BoolVar(&o.e2e, "e2e", true, "run the end-to-end cases (servers and load tester)")
	flag.StringVar(&o.keys, "keys", "both", "CSR key types: both, ecdsa-p256 or rsa2048")
	flag.IntVar(&o.storm, "storm", 0, "restart storm of `K` identities against each server (0: none)")
	flag.IntVar(&o.stormInFlight, "storm-in-flight", 2048, "storm: most requests (connections) in flight")
	flag.IntVar(&o.steady, "steady", 0, "steady renewal of `K` identities against each server (0: none)")
	flag.DurationVar(&o.steadyEvery, "steady-every", 10*time.Second, "steady renewal: each identity's period")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "sidebyside:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	dir, err := os.MkdirTemp("", "meshca-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if out, err := exec.CommandContext(ctx, o.meshca, "init", "--dir", dir).CombinedOutput(); err != nil {
		return fmt.Errorf("meshca init: %w: %s", err, out)
	}
	s, err := newSetup(ctx, o, dir)
	if err != nil {
		return err
	}
	r := &report{opts: o, started: time.Now()}
	r.header()
	for _, key := range keyTypes(o.keys) {
		progress("in-process, %s: preparing %d requests", key, o.n)
		in, err := makeInputs(s.dev, s.td, o.n, key == loadtest.KeyRSA2048, o.rsaPool)
		if err != nil {
			return err
		}
		progress("in-process, %s: measuring", key)
		ms, err := inProcess(ctx, s, in)
		if err != nil {
			return err
		}
		r.inProcess[key] = ms
	}
	r.printInProcess()
	if o.e2e {
		if err := endToEnd(ctx, s, r); err != nil {
			return err
		}
		r.printEndToEnd()
	}
	r.printRatios()
	if o.steady > 0 || o.storm > 0 {
		if err := scenarios(ctx, s, r); err != nil {
			return err
		}
	}
	r.footer()
	return nil
}

func newSetup(ctx context.Context, o options, dir string) (*setup, error) {
	s := &setup{opts: o, dir: dir, td: "cluster.local"}
	cacerts := filepath.Join(dir, "cacerts")
	var err error
	if s.dev, err = devtoken.Load("", filepath.Join(dir, devtoken.KeyFile)); err != nil {
		return nil, err
	}
	keys, err := s.dev.Keys().Keys(ctx, "")
	if err != nil || len(keys) != 1 {
		return nil, fmt.Errorf("dev token key: %v", err)
	}
	var ok bool
	if s.tokenKey, ok = keys[0].Key.(*ecdsa.PublicKey); !ok {
		return nil, errors.New("dev token key is not ECDSA")
	}
	if s.signer, err = baseline.LoadCA(cacerts); err != nil {
		return nil, err
	}
	if s.istio, err = baseline.NewIstioCA(cacerts); err != nil {
		return nil, err
	}
	if s.issuer, err = newMeshcaIssuer(ctx, cacerts, s.dev, s.td); err != nil {
		return nil, err
	}
	rootPEM, err := os.ReadFile(filepath.Join(cacerts, "root-cert.pem"))
	if err != nil {
		return nil, err
	}
	s.roots = x509.NewCertPool()
	if !s.roots.AppendCertsFromPEM(rootPEM) {
		return nil, errors.New("no root in root-cert.pem")
	}
	return s, nil
}

func keyTypes(s string) []loadtest.KeyType {
	switch s {
	case string(loadtest.KeyECDSAP256):
		return []loadtest.KeyType{loadtest.KeyECDSAP256}
	case string(loadtest.KeyRSA2048):
		return []loadtest.KeyType{loadtest.KeyRSA2048}
	}
	return []loadtest.KeyType{loadtest.KeyECDSAP256, loadtest.KeyRSA2048}
}

func progress(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "sidebyside: "+format+"\n", a...)
}

// servers are the two servers under test, as (name, binary, arguments).
func (s *setup) servers() [][2]string {
	return [][2]string{{"istiod", s.opts.istio}, {"meshca", s.opts.meshca}}
}

func (s *setup) serverArgs(name string) []string {
	if name == "meshca" {
		return []string{"serve", "--dev", s.dir}
	}
	return []string{"--dev", s.dir}
}

// endToEnd drives each server at saturation with each key type, then both at half of meshca's peak.
func endToEnd(ctx context.Context, s *setup, r *report) error {
	base := loadtest.Config{Namespaces: 10, ServiceAccounts: 100, Concurrency: 64, Connections: 1,
		FreshTokens: true, Retries: 5, Timeout: 10 * time.Second}
	peak := 0.0
	for _, key := range keyTypes(s.opts.keys) {
		for _, srv := range s.servers() {
			cfg := base
			cfg.Key, cfg.Rate, cfg.Duration = key, s.opts.rate, s.opts.duration
			if key == loadtest.KeyRSA2048 { // 100 RSA keys and CSRs, one per identity, reused round-robin
				cfg.Namespaces, cfg.CSRPool = 1, 100
			}
			progress("end to end, %s, %s: %g/s offered for %v", srv[0], key, cfg.Rate, cfg.Duration)
			res, err := drive(ctx, s, srv[0], srv[1], s.serverArgs(srv[0]), cfg, false)
			if err != nil {
				return err
			}
			r.e2e = append(r.e2e, e2eRun{server: srv[0], key: string(key), what: "saturation", res: res,
				load: loadAvg()})
			if srv[0] == "meshca" && key == loadtest.KeyECDSAP256 {
				peak = res.Throughput
			}
		}
	}
	if peak == 0 {
		return nil
	}
	for _, srv := range s.servers() {
		cfg := base
		cfg.Key, cfg.Rate, cfg.Duration = loadtest.KeyECDSAP256, peak/2, s.opts.duration
		progress("end to end, %s: half of meshca's peak, %.0f/s", srv[0], cfg.Rate)
		res, err := drive(ctx, s, srv[0], srv[1], s.serverArgs(srv[0]), cfg, false)
		if err != nil {
			return err
		}
		r.e2e = append(r.e2e, e2eRun{server: srv[0], key: string(cfg.Key), what: "half of meshca's peak",
			res: res, load: loadAvg()})
	}
	return nil
}

// scenarios runs the steady-renewal and restart-storm scenarios against each server.
func scenarios(ctx context.Context, s *setup, r *report) error {
	for _, srv := range s.servers() {
		if k := s.opts.steady; k > 0 {
			cfg := loadtest.Config{Namespaces: max(k/100, 1), ServiceAccounts: min(k, 100), Connections: 100,
				Concurrency: 256, Retries: 5, Duration: 3 * s.opts.steadyEvery, Key: loadtest.KeyECDSAP256,
				Rate: float64(k) / s.opts.steadyEvery.Seconds(), Timeout: 10 * time.Second}
			progress("steady renewal, %s: %d identities every %v", srv[0], k, s.opts.steadyEvery)
			res, err := drive(ctx, s, srv[0], srv[1], s.serverArgs(srv[0]), cfg, true)
			if err != nil {
				return err
			}
			r.scen = append(r.scen, e2eRun{server: srv[0], key: string(cfg.Key), res: res, load: loadAvg(),
				what: fmt.Sprintf("steady: %d identities renewing every %v over 100 connections", k,
					s.opts.steadyEvery)})
		}
		if k := s.opts.storm; k > 0 {
			cfg := loadtest.Config{Namespaces: max(k/100, 1), ServiceAccounts: min(k, 100),
				Concurrency: s.opts.stormInFlight, Retries: loadtest.MaxRetries, Scenario: loadtest.ScenarioStorm,
				Key: loadtest.KeyECDSAP256, Timeout: 30 * time.Second}
			progress("restart storm, %s: %d identities, %d in flight", srv[0], k, cfg.Concurrency)
			res, err := drive(ctx, s, srv[0], srv[1], s.serverArgs(srv[0]), cfg, true)
			if err != nil {
				return err
			}
			r.scen = append(r.scen, e2eRun{server: srv[0], key: string(cfg.Key), res: res, load: loadAvg(),
				what: fmt.Sprintf("storm: %d identities, each on a new TLS connection, %d in flight", k,
					cfg.Concurrency)})
		}
	}
	r.printScenarios()
	return nil
}
