package loadtest

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/csr/composite"
	"github.com/meshca/meshca/internal/devtoken"
	"github.com/meshca/meshca/internal/terminal"
)

// Exit codes of Command.
const (
	ExitOK     = 0
	ExitError  = 1 // the run could not start: unreadable files, meshca unreachable, TLS verification failed
	ExitUsage  = 2 // bad flags or configuration
	ExitFailed = 3 // with --fail-on-error: some request failed or got an invalid response
)

// Command is the meshca-loadtest command line: it parses args, loads the dev token key and the root, runs,
// prints the result on stdout and returns the exit code.
func Command(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("meshca-loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: meshca-loadtest [flags]\n\nSends istio-agent-like CreateCertificate requests "+
			"to meshca at a fixed rate (see docs/loadtest.md).\n\nflags:")
		fs.PrintDefaults()
	}
	var c Config
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:15012", "meshca gRPC address `host:port`")
	fs.StringVar(&c.ServerName, "server-name", "",
		"name to verify meshca's serving certificate against (default the host of --addr)")
	root := fs.String("root", ".dev/cacerts/root-cert.pem",
		"PEM `file` of the mesh root(s) that verify meshca's serving certificate and the issued chains")
	devDir := fs.String("dev-dir", ".dev",
		"dev `dir` of 'meshca serve --dev DIR' (its "+devtoken.KeyFile+" signs the service-account tokens)")
	fs.IntVar(&c.Namespaces, "namespaces", 10, "number of namespaces")
	fs.IntVar(&c.ServiceAccounts, "service-accounts", 10,
		"service accounts per namespace (identities = namespaces × service accounts)")
	fs.IntVar(&c.PodsPerIdentity, "pods-per-identity", 0, "simulate `n` pods per identity, each with a "+
		"bound token carrying its own pod claims (name, UID, node): a holder each for meshca's rotation "+
		"tracker; 0 sends tokens without pod claims")
	fs.StringVar(&c.NamespacePrefix, "namespace-prefix", "loadtest", "namespaces are named `prefix`-0, prefix-1, ...")
	fs.StringVar(&c.TrustDomain, "trust-domain", "cluster.local", "trust domain of the requested SPIFFE IDs")
	fs.StringVar(&c.ClusterID, "cluster-id", authn.DefaultClusterID, "clusterid header")
	fs.StringVar(&c.Audience, "audience", authn.DefaultAudience, "token audience")
	fs.Float64Var(&c.Rate, "rate", 100, "offered load, requests per second (open loop)")
	fs.DurationVar(&c.Duration, "duration", 10e9, "how long to send requests (at most 1h)")
	fs.IntVar(
		&c.Concurrency,
		"concurrency",
		64,
		"most requests in flight; a request due beyond it is dropped and counted",
	)
	fs.IntVar(&c.Connections, "connections", 1, "gRPC connections to spread requests over")
	fs.DurationVar(&c.Timeout, "timeout", 10e9, "per-request timeout")
	fs.DurationVar(
		&c.ValidityDuration,
		"validity",
		24*3600e9,
		"requested certificate lifetime (istio-agent SECRET_TTL)",
	)
	key := fs.String("key", string(KeyECDSAP256),
		"key `type` per request: "+string(KeyECDSAP256)+", "+string(KeyRSA2048)+", "+string(KeyMLDSA65)+
			" or "+string(KeyComposite)+" (composite)")
	pregen := fs.Bool("pregenerate", true,
		"generate every request's key and CSR before the timer; false generates them as requests are sent")
	fs.Float64Var(&c.ForeignFraction, "foreign-fraction", 0, "`fraction` (0..1) of requests whose CSR asks for "+
		"another workload's identity; meshca must refuse them (PermissionDenied)")
	scenario := fs.String("scenario", string(ScenarioRate), "`kind` of run: "+string(ScenarioRate)+
		" (open loop at --rate) or "+string(ScenarioStorm)+" (restart storm: every identity once, each on a new "+
		"TLS connection, all at once; --rate and --duration do not apply)")
	renewEvery := fs.Duration("renew-every", 0, "steady renewal: every identity (or pod) renews once per "+
		"`period` (sets --rate to identities or pods / period)")
	fs.IntVar(&c.CSRPool, "csr-pool", 0, "make only `n` keys and CSRs before the timer and reuse them "+
		"round-robin (each for its own identity); 0 makes a fresh key per request")
	fs.BoolVar(&c.FreshTokens, "fresh-tokens", false, "give every request its own token instead of one per identity")
	fs.IntVar(&c.Retries, "retries", 5, "times an answer istio-agent retries (ResourceExhausted, Unavailable, "+
		"DeadlineExceeded, Aborted, Internal) is retried with its backoff (100ms doubling up to 3.2s, 10% jitter)")
	fs.StringVar(&c.ServerMetrics, "server-metrics", "", "`URL` of the server's Prometheus endpoint (e.g. "+
		"http://127.0.0.1:15014/metrics): report its CPU per certificate and its peak RSS and goroutines")
	fs.IntVar(&c.ServerPID, "server-pid", 0, "`pid` of a server on this machine: read its CPU and peak RSS "+
		"from /proc (free for the server) instead of from --server-metrics")
	asJSON := fs.Bool("json", false, "print the result as JSON instead of a table")
	failOnError := fs.Bool("fail-on-error", false,
		fmt.Sprintf("exit %d if any request failed or got an invalid response", ExitFailed))
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "meshca-loadtest: unexpected arguments %q\n", fs.Args())
		return ExitUsage
	}
	c.Key = ParseKeyType(*key)
	c.Scenario = Scenario(*scenario)
	if *renewEvery > 0 {
		c.Rate = float64(c.withDefaults().workloads()) / renewEvery.Seconds()
	}
	c.GenerateKeysInline = !*pregen
	// Report configuration problems before touching files; Roots and Tokens are checked once loaded.
	if err := withFiles(c).Validate(); err != nil {
		fmt.Fprintf(stderr, "meshca-loadtest: %v\n", err)
		return ExitUsage
	}
	var err error
	if c.Roots, c.CompositeRoots, err = loadRoots(*root); err != nil {
		fmt.Fprintf(stderr, "meshca-loadtest: %v\n", err)
		return ExitError
	}
	keyFile := filepath.Join(*devDir, devtoken.KeyFile)
	if c.Tokens, err = devtoken.Load("", keyFile); err != nil {
		fmt.Fprintf(
			stderr,
			"meshca-loadtest: dev token key: %v (start meshca with 'meshca serve --dev %s')\n",
			err,
			*devDir,
		)
		return ExitError
	}
	if !*asJSON && terminal.Is(stderr) {
		c.Progress = stderr
	}
	res, err := Run(ctx, c)
	if err != nil {
		fmt.Fprintf(stderr, "meshca-loadtest: %v\n", err)
		return ExitError
	}
	if *asJSON {
		err = res.WriteJSON(stdout)
	} else {
		err = res.WriteTable(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "meshca-loadtest: %v\n", err)
		return ExitError
	}
	if *failOnError && res.Failed() {
		fmt.Fprintf(stderr, "meshca-loadtest: %d errors, %d invalid responses\n", res.ErrorCount(), res.Invalid)
		return ExitFailed
	}
	return ExitOK
}

// withFiles stands in for the roots and token issuer that Command loads from files, so Validate reports only
// the problems with the flags.
func withFiles(c Config) Config {
	c.Roots = x509.NewCertPool()
	c.Tokens = &devtoken.Minter{}
	return c
}

// loadRoots reads a PEM file of one or more root certificates; the composite ones are also returned apart, for
// the composite chains an x509.CertPool cannot verify.
func loadRoots(path string) (*x509.CertPool, []*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("roots: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, nil, fmt.Errorf("roots: no certificate in %s", path)
	}
	var hybrid []*x509.Certificate
	for rest := b; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil || c.PublicKey != nil {
			continue
		}
		if k, err := composite.ParsePKIXPublicKey(c.RawSubjectPublicKeyInfo); err == nil {
			if _, ok := k.(*composite.PublicKey); ok {
				hybrid = append(hybrid, c)
			}
		}
	}
	return pool, hybrid, nil
}
