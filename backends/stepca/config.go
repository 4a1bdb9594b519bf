package stepca

import (
	"encoding/hex"
	"errors"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/meshca/meshca/internal/compliance"
)

// Config configures the step-ca backend. Exactly one of JWK and X5C names the provisioner meshca signs its
// tokens with; exactly one of RootFingerprint and RootsFile pins step-ca's roots.
type Config struct {
	// URL is step-ca's base URL, for example https://step-ca.pki.svc:9000. It must be https.
	URL string `json:"url"`
	// RootFingerprint is the hex SHA-256 of the DER of one of step-ca's roots, as `step certificate
	// fingerprint root_ca.crt` prints it. meshca fetches that root over an unauthenticated connection, checks
	// the hash, and from then on trusts only what chains to it (bootstrap by fingerprint).
	RootFingerprint string `json:"rootFingerprint,omitempty"`
	// RootsFile is a PEM bundle of step-ca's roots, the alternative to RootFingerprint.
	RootsFile string `json:"rootsFile,omitempty"`

	// JWK selects a JWK provisioner: meshca holds its private key and signs one-time tokens with it.
	JWK *JWKConfig `json:"jwk,omitempty"`
	// X5C selects an X5C provisioner: meshca signs tokens with its own certificate and key, and step-ca
	// trusts them because the certificate chains to the provisioner's roots.
	X5C *X5CConfig `json:"x5c,omitempty"`

	// Timeout bounds every call to step-ca (dial, TLS, request and response). Default 5s.
	Timeout time.Duration `json:"timeout,omitempty"`
	// TokenLifetime is how long a minted token is valid. step-ca refuses a token it has seen before, so a
	// short lifetime only bounds the damage of a leaked log line. Default 1m.
	TokenLifetime time.Duration `json:"tokenLifetime,omitempty"`
	// Backdate moves NotBefore into the past to tolerate clock skew between nodes; NotAfter is NotBefore plus
	// the requested TTL, so the validity period is exactly the TTL. Default 30s.
	Backdate time.Duration `json:"backdate,omitempty"`
	// RootsRefresh is how old the cached roots may grow before a background refresh. Default 1h.
	RootsRefresh time.Duration `json:"rootsRefresh,omitempty"`

	// Clock returns the current time; default time.Now.
	Clock func() time.Time `json:"-"`
	// Getenv reads the environment (JWK.PasswordEnv); default os.Getenv.
	Getenv func(string) string `json:"-"`
	// Logger receives backend events; default slog.Default(). Tokens and keys are never logged.
	Logger *slog.Logger `json:"-"`
	// TLSPolicy is the COMPLIANCE_POLICY applied to every connection to step-ca (set by meshca, not the file).
	TLSPolicy compliance.Policy `json:"-"`
}

// JWKConfig names a JWK provisioner and where its private key is.
type JWKConfig struct {
	// Provisioner is the provisioner's name in ca.json (the token's iss).
	Provisioner string `json:"provisioner"`
	// KeyFile holds the provisioner's private key: a JWE as `step crypto jwk create` writes it (the
	// provisioner's encryptedKey in ca.json is the same JWE in compact form), or a plain private JWK.
	KeyFile string `json:"keyFile"`
	// PasswordFile holds the JWE password; a trailing newline is ignored.
	PasswordFile string `json:"passwordFile,omitempty"`
	// PasswordEnv names an environment variable holding the JWE password.
	PasswordEnv string `json:"passwordEnv,omitempty"`
}

// X5CConfig names an X5C provisioner and meshca's credential for it.
type X5CConfig struct {
	// Provisioner is the provisioner's name in ca.json.
	Provisioner string `json:"provisioner"`
	// CertFile is meshca's certificate chain in PEM, leaf first. The leaf must allow digitalSignature and
	// clientAuth and chain to the provisioner's roots. It is re-read when it changes on disk.
	CertFile string `json:"certFile"`
	// KeyFile is the leaf's private key in PEM (PKCS #8, SEC 1 or PKCS #1), re-read with CertFile.
	KeyFile string `json:"keyFile"`
}

// Validate reports every problem with c at once. It has no side effects: it reads no files.
func (c *Config) Validate() error {
	var errs []error
	add := func(msg string) { errs = append(errs, errors.New("stepca: "+msg)) }
	if c.URL == "" {
		add("url is required: step-ca's base URL, e.g. https://step-ca.pki.svc:9000")
	} else if u, err := url.Parse(c.URL); err != nil || u.Scheme != "https" || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		add("url " + c.URL + " must be an https URL with a host and no path, query or user info")
	}
	switch {
	case c.RootFingerprint == "" && c.RootsFile == "":
		add("one of rootFingerprint (step certificate fingerprint root_ca.crt) or rootsFile is required to pin " +
			"step-ca's roots")
	case c.RootFingerprint != "" && c.RootsFile != "":
		add("set only one of rootFingerprint and rootsFile")
	case c.RootFingerprint != "":
		if b, err := hex.DecodeString(normalizeFingerprint(c.RootFingerprint)); err != nil || len(b) != 32 {
			add("rootFingerprint must be the 64 hex digits of a SHA-256 hash")
		}
	}
	switch {
	case c.JWK == nil && c.X5C == nil:
		add("one provisioner is required: set jwk or x5c")
	case c.JWK != nil && c.X5C != nil:
		add("set only one of jwk and x5c")
	case c.JWK != nil:
		if c.JWK.Provisioner == "" {
			add("jwk.provisioner is required: the provisioner's name in ca.json")
		}
		if c.JWK.KeyFile == "" {
			add("jwk.keyFile is required: the provisioner's private key (JWE or JWK)")
		}
		if c.JWK.PasswordFile != "" && c.JWK.PasswordEnv != "" {
			add("set only one of jwk.passwordFile and jwk.passwordEnv")
		}
	case c.X5C != nil:
		if c.X5C.Provisioner == "" {
			add("x5c.provisioner is required: the provisioner's name in ca.json")
		}
		if c.X5C.CertFile == "" || c.X5C.KeyFile == "" {
			add("x5c.certFile and x5c.keyFile are required: meshca's credential for the X5C provisioner")
		}
	}
	if c.Timeout < 0 || c.Timeout > 5*time.Minute {
		add("timeout must be between 0 (default 5s) and 5m")
	}
	if c.TokenLifetime < 0 || c.TokenLifetime > 10*time.Minute {
		add("tokenLifetime must be between 0 (default 1m) and 10m")
	}
	if c.Backdate < 0 || c.Backdate > time.Hour {
		add("backdate must be between 0 (default 30s) and 1h")
	}
	if c.RootsRefresh < 0 {
		add("rootsRefresh must not be negative")
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
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.TokenLifetime == 0 {
		c.TokenLifetime = time.Minute
	}
	if c.Backdate == 0 {
		c.Backdate = 30 * time.Second
	}
	if c.RootsRefresh == 0 {
		c.RootsRefresh = time.Hour
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Getenv == nil {
		c.Getenv = os.Getenv
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// provisionerName returns the configured provisioner's name.
func (c *Config) provisionerName() string {
	if c.X5C != nil {
		return c.X5C.Provisioner
	}
	return c.JWK.Provisioner
}

// normalizeFingerprint accepts the forms tools print: lowercase or uppercase hex, with or without colons.
func normalizeFingerprint(s string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), ":", ""))
}
