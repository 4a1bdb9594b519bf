package loadtest

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strings"
	"time"

	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/internal/devtoken"
)

// KeyType is the kind of key each simulated agent generates.
type KeyType string

// Key types: istio-agent uses RSA-2048 by default and ECDSA P-256 with ECC_SIGNATURE_ALGORITHM=ECDSA. The
// values are meshca's key_type label values (csr.KeyTypes), so a run's report and meshca's
// meshca_certificates_issued_total{key_type} name keys alike.
const (
	KeyECDSAP256 KeyType = "ECDSA-P256"
	KeyRSA2048   KeyType = "RSA-2048"
	// KeyMLDSA65 is an ML-DSA-65 key (RFC 9881); meshca needs issuance.mldsa and an ML-DSA CA.
	KeyMLDSA65 KeyType = "ML-DSA-65"
	// KeyComposite is a composite ML-DSA-65 + ECDSA-P256 key (draft-ietf-lamps-pq-composite-sigs); meshca needs
	// issuance.experimentalComposite and a composite CA, and the composite root must be in CompositeRoots.
	KeyComposite KeyType = "MLDSA65-ECDSA-P256"
)

// ParseKeyType reads a --key value: a key_type label value in any case, or the older spellings ecdsa-p256 and
// rsa2048.
func ParseKeyType(s string) KeyType {
	switch strings.ToLower(s) {
	case "ecdsa-p256":
		return KeyECDSAP256
	case "rsa-2048", "rsa2048":
		return KeyRSA2048
	case "ml-dsa-65", "mldsa65":
		return KeyMLDSA65
	case "mldsa65-ecdsa-p256", "composite":
		return KeyComposite
	}
	return KeyType(s)
}

// Limits that keep a run bounded.
const (
	MaxDuration   = time.Hour
	MaxRate       = 100_000
	MaxIdentities = 100_000
	// MaxPrepared bounds the requests prepared before the timer (each holds a CSR).
	MaxPrepared = 2_000_000
)

// Config describes one load-test run. Zero fields take the defaults listed; Validate reports every problem.
type Config struct {
	// Addr is meshca's gRPC address, host:port.
	Addr string
	// ServerName is checked against meshca's serving certificate; default the host of Addr, as istio-agent
	// does with CA_ADDR.
	ServerName string
	// Roots verifies meshca's serving certificate and the issued chains.
	Roots *x509.CertPool
	// CompositeRoots verify the issued composite chains (KeyComposite), which an x509.CertPool cannot.
	CompositeRoots []*x509.Certificate
	// Tokens mints one service-account JWT per identity; meshca must trust its key (`meshca serve --dev`).
	Tokens *devtoken.Minter
	// Audience of the tokens; default authn.DefaultAudience.
	Audience string
	// TrustDomain of the requested SPIFFE IDs; default "cluster.local".
	TrustDomain string
	// ClusterID is sent in the clusterid header; default authn.DefaultClusterID (istio-agent's default).
	ClusterID string
	// Namespaces × ServiceAccounts distinct identities, named <NamespacePrefix>-<n> and sa-<m>; default 10 × 10.
	Namespaces, ServiceAccounts int
	// NamespacePrefix defaults to "loadtest".
	NamespacePrefix string
	// PodsPerIdentity, when positive, simulates that many pods per identity, each with its own token carrying
	// the kubernetes.io pod claims of a bound token (pod name and UID, node name): each pod is then a holder
	// of its own trust bundle for meshca's rotation tracker (docs/root-rotation.md). Requests and storms go
	// round the pods instead of the identities. 0 (the default) sends tokens without pod claims, one per
	// identity. Namespaces × ServiceAccounts × PodsPerIdentity is at most MaxPods.
	PodsPerIdentity int

	// Rate is the offered load in requests per second.
	Rate float64
	// Duration is how long requests are scheduled; at most MaxDuration.
	Duration time.Duration
	// Concurrency bounds the requests in flight; default 64. A request due while it is reached is dropped.
	Concurrency int
	// Connections is the number of gRPC connections requests are spread over; default 1.
	Connections int
	// Timeout bounds each request; default 10s.
	Timeout time.Duration
	// ValidityDuration is the requested certificate lifetime; default 24h (istio-agent's SECRET_TTL).
	ValidityDuration time.Duration

	// Progress, when set, receives a progress line once a second (a terminal: lines overwrite each other).
	Progress io.Writer

	// Key is the key type; default KeyECDSAP256.
	Key KeyType
	// GenerateKeysInline generates each request's key and CSR when it is sent instead of before the timer,
	// so key generation competes with sending (and may limit the rate).
	GenerateKeysInline bool

	// ForeignFraction of the requests (0..1) ask in their CSR for an identity other than their token's: meshca
	// must refuse them with PermissionDenied.
	ForeignFraction float64

	// CSRPool, when positive, makes only that many keys and CSRs before the timer (rounded up to a multiple of
	// the identities) and reuses them round-robin, each for its own identity: RSA-2048 keys cost ~40 ms each
	// to make. Neither meshca nor istiod remembers CSRs, so the server's work is the same; 0 makes a fresh
	// key for every request.
	CSRPool int
	// Scenario is what the run simulates; default ScenarioRate.
	Scenario Scenario
	// FreshTokens gives every request its own token (minted before the timer) instead of one per identity, so
	// that nothing keyed by the token can make the server's work look smaller.
	FreshTokens bool
	// Retries is how many times a request answered with a code istio-agent retries (ResourceExhausted from
	// meshca's flood limits; Unavailable, DeadlineExceeded, Aborted, Internal) is sent again, after its
	// backoff: 100 ms doubling up to 3.2 s, with 10 % jitter. Default 0.
	Retries int
	// ServerMetrics, when set, is the URL of the server's Prometheus endpoint (with the process and Go
	// collectors): the result then reports the server's CPU per certificate and its peak RSS and goroutines.
	ServerMetrics string
	// ServerPID, when set, is the process ID of a server on this machine: its CPU and peak RSS are then read
	// from the kernel's accounting (/proc/PID/stat and VmHWM), which costs the server nothing, instead of from
	// ServerMetrics (each scrape costs the server a few milliseconds of CPU).
	ServerPID int
}

// Scenario is the shape of a run.
type Scenario string

// Scenarios.
const (
	// ScenarioRate sends Rate requests per second for Duration over Connections long-lived connections,
	// identities taking turns: steady renewal when Rate = identities / renewal period.
	ScenarioRate Scenario = "rate"
	// ScenarioStorm is a restart storm: every identity (or pod, with PodsPerIdentity) asks once, each on a new
	// TLS connection, all at once (at most Concurrency in flight, the rest waiting for a slot rather than being
	// dropped). Rate and Duration do not apply.
	ScenarioStorm Scenario = "storm"
)

// MaxRetries bounds Config.Retries.
const MaxRetries = 20

// withDefaults returns c with the zero fields defaulted.
func (c Config) withDefaults() Config {
	if c.ServerName == "" {
		if host, _, err := net.SplitHostPort(c.Addr); err == nil {
			c.ServerName = host
		}
	}
	if c.Audience == "" {
		c.Audience = authn.DefaultAudience
	}
	if c.TrustDomain == "" {
		c.TrustDomain = "cluster.local"
	}
	if c.ClusterID == "" {
		c.ClusterID = authn.DefaultClusterID
	}
	if c.Namespaces == 0 {
		c.Namespaces = 10
	}
	if c.ServiceAccounts == 0 {
		c.ServiceAccounts = 10
	}
	if c.NamespacePrefix == "" {
		c.NamespacePrefix = "loadtest"
	}
	if c.Concurrency == 0 {
		c.Concurrency = 64
	}
	if c.Connections == 0 {
		c.Connections = 1
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.ValidityDuration == 0 {
		c.ValidityDuration = 24 * time.Hour
	}
	if c.Key == "" {
		c.Key = KeyECDSAP256
	}
	if c.Scenario == "" {
		c.Scenario = ScenarioRate
	}
	return c
}

// requests is the number of requests a run schedules: one at each multiple of 1/Rate in [0, Duration), or
// one per identity in a storm.
func (c Config) requests() int {
	if c.Scenario == ScenarioStorm {
		return c.workloads()
	}
	return int(math.Ceil(c.Rate*c.Duration.Seconds() - 1e-9))
}

// Validate reports every problem with c (after defaults) at once. It has no side effects.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("addr %q: want host:port", c.Addr))
	}
	if c.Roots == nil {
		errs = append(errs, errors.New("roots: required (the mesh root that signs meshca's serving certificate)"))
	}
	if c.Tokens == nil {
		errs = append(errs, errors.New("tokens: required (meshca's dev token issuer)"))
	}
	if c.Namespaces < 0 || c.ServiceAccounts < 0 || c.Namespaces*c.ServiceAccounts > MaxIdentities {
		errs = append(errs, fmt.Errorf("namespaces × service accounts must be 1..%d", MaxIdentities))
	}
	if c.PodsPerIdentity < 0 || c.PodsPerIdentity > MaxPods ||
		c.PodsPerIdentity > 0 && c.Namespaces*c.ServiceAccounts*c.PodsPerIdentity > MaxPods {
		errs = append(errs, fmt.Errorf("pods per identity %d: namespaces × service accounts × pods per identity "+
			"must be 1..%d", c.PodsPerIdentity, MaxPods))
	}
	if c.Scenario != ScenarioStorm && !(c.Rate > 0 && c.Rate <= MaxRate) {
		errs = append(errs, fmt.Errorf("rate %v: must be in (0, %d] requests/s", c.Rate, MaxRate))
	}
	if c.Scenario != ScenarioStorm && (c.Duration <= 0 || c.Duration > MaxDuration) {
		errs = append(errs, fmt.Errorf("duration %v: must be in (0, %v]", c.Duration, MaxDuration))
	}
	if c.Scenario != ScenarioRate && c.Scenario != ScenarioStorm {
		errs = append(errs, fmt.Errorf("scenario %q: want %s or %s", c.Scenario, ScenarioRate, ScenarioStorm))
	}
	if c.CSRPool < 0 || c.CSRPool > MaxPrepared {
		errs = append(errs, fmt.Errorf("csr pool %d: must be 0..%d", c.CSRPool, MaxPrepared))
	}
	if c.CSRPool > 0 && (c.ForeignFraction > 0 || c.GenerateKeysInline) {
		errs = append(errs, errors.New("csr pool: not with a foreign fraction or keys generated inline"))
	}
	if c.Retries < 0 || c.Retries > MaxRetries {
		errs = append(errs, fmt.Errorf("retries %d: must be 0..%d", c.Retries, MaxRetries))
	}
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("concurrency %d: must be at least 1", c.Concurrency))
	}
	if c.Connections < 1 || c.Connections > 1000 {
		errs = append(errs, fmt.Errorf("connections %d: must be 1..1000", c.Connections))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %v: must be positive", c.Timeout))
	}
	if c.ValidityDuration < time.Second {
		errs = append(errs, fmt.Errorf("validity duration %v: must be at least 1s", c.ValidityDuration))
	}
	if c.Key != KeyECDSAP256 && c.Key != KeyRSA2048 && c.Key != KeyMLDSA65 && c.Key != KeyComposite {
		errs = append(errs, fmt.Errorf("key %q: want %s, %s, %s or %s", c.Key, KeyECDSAP256, KeyRSA2048, KeyMLDSA65,
			KeyComposite))
	}
	if !(c.ForeignFraction >= 0 && c.ForeignFraction <= 1) {
		errs = append(errs, fmt.Errorf("foreign fraction %v: must be in [0, 1]", c.ForeignFraction))
	}
	if len(errs) == 0 && !c.GenerateKeysInline && c.requests() > MaxPrepared {
		errs = append(errs, fmt.Errorf("rate × duration = %d requests: more than %d to prepare; "+
			"lower them or generate keys inline", c.requests(), MaxPrepared))
	}
	return errors.Join(errs...)
}
