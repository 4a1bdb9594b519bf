package vault

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/internal/compliance"
)

// Signing modes.
const (
	// ModeSign signs with <mount>/sign/<role>: meshca passes the SANs and Vault applies the role's policy too.
	ModeSign = "sign"
	// ModeSignVerbatim signs with <mount>/sign-verbatim[/<role>]: Vault copies the CSR's subject, SANs and
	// extensions, whatever the role says. The backend refuses a CSR whose SANs differ from the request's, and
	// backends.CheckLeaf refuses every leaf that carries more than the request (istio-agent's O= subject
	// included). Not recommended; docs/vault.md explains.
	ModeSignVerbatim = "sign-verbatim"
)

// Authentication methods.
const (
	// AuthToken uses a Vault token given in the configuration or read from a file.
	AuthToken = "token"
	// AuthAppRole logs in with a role ID and a secret ID.
	AuthAppRole = "approle"
	// AuthKubernetes logs in with Vault's Kubernetes auth method and a (projected) service-account token file.
	AuthKubernetes = "kubernetes"
	// AuthJWT logs in with Vault's JWT auth method and a token file, for example a projected service-account
	// token validated against the cluster's issuer keys without a TokenReview.
	AuthJWT = "jwt"
)

// DefaultTimeout is the deadline of each call to Vault when Config.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// Config configures the Vault backend. Decode it with DecodeConfig (unknown keys are errors).
type Config struct {
	// Address is Vault's URL, for example https://vault.vault.svc:8200.
	Address string `json:"address"`
	// Namespace is the Vault Enterprise namespace sent in the X-Vault-Namespace header; empty for none.
	Namespace string `json:"namespace,omitempty"`
	// Mount is the path of the PKI secrets engine that holds the issuing CA, for example "pki_int".
	Mount string `json:"mount"`
	// Role is the PKI role. Required for ModeSign; optional for ModeSignVerbatim.
	Role string `json:"role,omitempty"`
	// Mode is ModeSign (default) or ModeSignVerbatim.
	Mode string `json:"mode,omitempty"`
	// IssuerRef selects the mount's issuer by name or ID; empty uses the role's issuer or the mount default.
	IssuerRef string `json:"issuerRef,omitempty"`

	// RootsFile and RootsPEM hold the trust anchors (PEM) that issued chains must verify to. When both are
	// empty, the anchors are taken from the mount's issuers and must match RootFingerprints.
	RootsFile string `json:"rootsFile,omitempty"`
	RootsPEM  string `json:"rootsPEM,omitempty"`
	// RootFingerprints pins the trust anchors by the SHA-256 of their DER (hex, colons allowed). With RootsFile
	// or RootsPEM, every anchor given must match a fingerprint; without them, every fingerprint must be found
	// among the mount's issuer certificates.
	RootFingerprints []string `json:"rootFingerprints,omitempty"`

	// Timeout bounds each call to Vault. Default DefaultTimeout.
	Timeout time.Duration `json:"timeout,omitempty"`
	// RefreshInterval is how often the mount's CA chain is refetched. Default 10m.
	RefreshInterval time.Duration `json:"refreshInterval,omitempty"`
	// StartUnavailable lets New succeed while Vault is unreachable: the backend then fails every call with
	// backends.ErrUnavailable (so meshca can start and fail over to its other backends) and connects in the
	// background. Configuration errors, refused credentials and a chain that does not verify still fail New.
	StartUnavailable bool `json:"startUnavailable,omitempty"`

	// TLS configures the connection to Vault.
	TLS TLSConfig `json:"tls,omitempty"`
	// Auth says how meshca logs in to Vault.
	Auth AuthConfig `json:"auth"`

	// Clock returns the current time; default time.Now.
	Clock func() time.Time `json:"-"`
	// Logger receives the backend's events; default slog.Default(). Tokens and secret IDs are never logged.
	Logger *slog.Logger `json:"-"`
	// TLSPolicy is the COMPLIANCE_POLICY applied to the connection to Vault (set by meshca, not the file).
	TLSPolicy compliance.Policy `json:"-"`
	// ReadFile reads the token, secret-ID and CA files; default os.ReadFile.
	ReadFile func(name string) ([]byte, error) `json:"-"`
}

// TLSConfig configures TLS to Vault.
type TLSConfig struct {
	// CAFile and CAPEM hold the CA bundle that Vault's serving certificate must chain to; when both are empty
	// the system roots are used.
	CAFile string `json:"caFile,omitempty"`
	CAPEM  string `json:"caPEM,omitempty"`
	// ServerName overrides the name checked in Vault's serving certificate.
	ServerName string `json:"serverName,omitempty"`
	// InsecureSkipVerify turns off verification of Vault's certificate. For experiments only: it is logged as
	// an error at every start.
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// AuthConfig says how meshca logs in to Vault.
type AuthConfig struct {
	// Method is AuthToken, AuthAppRole, AuthKubernetes or AuthJWT.
	Method string `json:"method"`
	// MountPath is the auth method's mount; default "approle", "kubernetes" or "jwt" by Method.
	MountPath string `json:"mountPath,omitempty"`

	// Token or TokenFile is the Vault token (AuthToken). A TokenFile is re-read when it changes, so a Vault
	// Agent sink can rotate it.
	Token     Secret `json:"token,omitempty"`
	TokenFile string `json:"tokenFile,omitempty"`

	// RoleID and SecretID or SecretIDFile are the AppRole credentials (AuthAppRole).
	RoleID       string `json:"roleID,omitempty"`
	SecretID     Secret `json:"secretID,omitempty"`
	SecretIDFile string `json:"secretIDFile,omitempty"`

	// Role is the Vault role to log in as (AuthKubernetes, AuthJWT).
	Role string `json:"role,omitempty"`
	// JWTFile is the service-account token file, re-read at each login (AuthKubernetes, AuthJWT). Default for
	// AuthKubernetes: /var/run/secrets/kubernetes.io/serviceaccount/token.
	JWTFile string `json:"jwtFile,omitempty"`
}

// Secret is a credential in the configuration. It prints, logs and marshals as "REDACTED".
type Secret string

// String returns "REDACTED" for a non-empty secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "REDACTED"
}

// LogValue keeps the secret out of structured logs.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON keeps the secret out of dumped configurations.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON reads the secret as a plain JSON string.
func (s *Secret) UnmarshalJSON(b []byte) error {
	var v string
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = Secret(v)
	return nil
}

// DecodeConfig decodes a JSON configuration strictly: unknown keys are errors. It does not validate.
func DecodeConfig(b []byte) (Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("vault: decoding config: %w", err)
	}
	return c, nil
}

// Validate reports every problem with c at once. It has no side effects: files are not read.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf("vault: "+format, args...)) }
	if c.Address == "" {
		add("address is required, for example https://vault.vault.svc:8200")
	} else if u, err := url.Parse(c.Address); err != nil || (u.Scheme != "https" && u.Scheme != "http") ||
		u.Host == "" {
		add("address %q must be an http or https URL with a host", c.Address)
	}
	if c.Mount == "" {
		add("mount is required: the path of the PKI secrets engine, for example pki_int")
	} else if !validPath(c.Mount) {
		add("mount %q must be a Vault path without leading or trailing '/', '..' or spaces", c.Mount)
	}
	switch c.Mode {
	case "", ModeSign:
		if c.Role == "" {
			add("role is required with mode %q", ModeSign)
		}
	case ModeSignVerbatim:
	default:
		add("mode %q must be %q or %q", c.Mode, ModeSign, ModeSignVerbatim)
	}
	if c.Role != "" && !validName(c.Role) {
		add("role %q must not contain '/', '..' or spaces", c.Role)
	}
	if c.IssuerRef != "" && !validName(c.IssuerRef) {
		add("issuerRef %q must not contain '/', '..' or spaces", c.IssuerRef)
	}
	if c.RootsFile != "" && c.RootsPEM != "" {
		add("set only one of rootsFile and rootsPEM")
	}
	if c.RootsFile == "" && c.RootsPEM == "" && len(c.RootFingerprints) == 0 {
		add("the trust anchor is not configured: set rootsFile or rootsPEM, or rootFingerprints to pin the " +
			"mount's root")
	}
	for _, fp := range c.RootFingerprints {
		if _, err := parseFingerprint(fp); err != nil {
			add("rootFingerprints: %v", err)
		}
	}
	if c.RootsPEM != "" {
		if _, err := backends.ParseCertificates([]byte(c.RootsPEM)); err != nil {
			add("rootsPEM: %v", err)
		}
	}
	if c.TLS.CAFile != "" && c.TLS.CAPEM != "" {
		add("tls: set only one of caFile and caPEM")
	}
	if c.TLS.CAPEM != "" {
		if _, err := backends.ParseCertificates([]byte(c.TLS.CAPEM)); err != nil {
			add("tls.caPEM: %v", err)
		}
	}
	if c.Timeout < 0 || c.Timeout > 2*time.Minute {
		add("timeout %s must be between 0 (default %s) and 2m", c.Timeout, DefaultTimeout)
	}
	if c.RefreshInterval < 0 {
		add("refreshInterval must not be negative")
	}
	errs = append(errs, c.Auth.validate()...)
	return errors.Join(errs...)
}

func (a *AuthConfig) validate() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf("vault: auth: "+format, args...)) }
	if a.MountPath != "" && !validPath(a.MountPath) {
		add("mountPath %q must be a Vault path without leading or trailing '/', '..' or spaces", a.MountPath)
	}
	switch a.Method {
	case AuthToken:
		if (a.Token == "") == (a.TokenFile == "") {
			add("method token needs exactly one of token and tokenFile")
		}
	case AuthAppRole:
		if a.RoleID == "" {
			add("method approle needs roleID")
		}
		if (a.SecretID == "") == (a.SecretIDFile == "") {
			add("method approle needs exactly one of secretID and secretIDFile")
		}
	case AuthKubernetes, AuthJWT:
		if a.Role == "" {
			add("method %s needs role: the Vault role to log in as", a.Method)
		}
		if a.Method == AuthJWT && a.JWTFile == "" {
			add("method jwt needs jwtFile: the token file to log in with")
		}
	case "":
		add("method is required: token, approle, kubernetes or jwt")
	default:
		add("method %q must be token, approle, kubernetes or jwt", a.Method)
	}
	if a.Method != AuthToken && (a.Token != "" || a.TokenFile != "") {
		add("token and tokenFile apply only to method token")
	}
	if a.Method != AuthAppRole && (a.RoleID != "" || a.SecretID != "" || a.SecretIDFile != "") {
		add("roleID, secretID and secretIDFile apply only to method approle")
	}
	if a.Method != AuthKubernetes && a.Method != AuthJWT && (a.Role != "" || a.JWTFile != "") {
		add("role and jwtFile apply only to methods kubernetes and jwt")
	}
	return errs
}

// WithDefaults returns c with every unset setting at the default New applies (for meshca config print
// --defaults).
func (c Config) WithDefaults() Config {
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.Mode == "" {
		c.Mode = ModeSign
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = 10 * time.Minute
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ReadFile == nil {
		c.ReadFile = os.ReadFile
	}
	if c.Auth.MountPath == "" {
		switch c.Auth.Method {
		case AuthAppRole, AuthKubernetes, AuthJWT:
			c.Auth.MountPath = c.Auth.Method
		}
	}
	if c.Auth.Method == AuthKubernetes && c.Auth.JWTFile == "" {
		c.Auth.JWTFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	}
}

func validName(s string) bool {
	return s != "" && !strings.ContainsAny(s, "/ \t\n?#%") && s != "." && s != ".."
}

func validPath(s string) bool {
	if s == "" || strings.ContainsAny(s, " \t\n?#%") {
		return false
	}
	for _, part := range strings.Split(s, "/") {
		if part == "" || part == "." || part == ".." {
			return false
		}
	}
	return true
}

// parseFingerprint reads a SHA-256 fingerprint written as hex, with or without colons.
func parseFingerprint(s string) ([sha256.Size]byte, error) {
	var fp [sha256.Size]byte
	h := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), ":", ""))
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != sha256.Size {
		return fp, fmt.Errorf("%q is not a SHA-256 fingerprint (64 hex digits, colons allowed)", s)
	}
	copy(fp[:], b)
	return fp, nil
}

// Fingerprint returns the SHA-256 fingerprint of cert's DER as lowercase hex, the form RootFingerprints takes.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}
