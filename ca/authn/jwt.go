package authn

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/meshca/meshca/internal/logsafe"
)

// AllowedAlgorithms are the JWS algorithms accepted on tokens: asymmetric only, so no "none" and no HMAC
// (an HMAC token could be forged with a public key used as the secret).
var AllowedAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// KeySet finds verification keys for a token issuer.
type KeySet interface {
	// Keys returns the keys with the given key ID, or every key when kid is empty. An unknown kid may cause a
	// refresh from the source.
	Keys(ctx context.Context, kid string) ([]jose.JSONWebKey, error)
}

// TokenIssuer is one trusted service-account token issuer and the keys that verify its tokens.
type TokenIssuer struct {
	// Issuer is the exact "iss" claim, e.g. https://kubernetes.default.svc.cluster.local.
	Issuer string
	// Audiences are accepted "aud" values; a token must carry at least one. Default [DefaultAudience].
	Audiences []string
	// Keys verifies the signatures.
	Keys KeySet
	// ClusterID is the cluster whose service accounts this issuer's tokens prove, and the caller's cluster
	// (Caller.ClusterID) for every token it verifies; the clusterid header must name it, or be empty when it
	// is the local cluster. Default JWTOptions.LocalClusterID.
	ClusterID string
}

// JWT authenticates Kubernetes service-account tokens by verifying them locally against their issuer's keys.
type JWT struct {
	issuers        map[string]TokenIssuer
	passUnknown    bool
	leeway         time.Duration
	maxLifetime    time.Duration
	localClusterID string
	clock          func() time.Time
}

// DefaultLeeway is the clock skew tolerated on token times when none is configured.
const DefaultLeeway = 30 * time.Second

// maxLeeway bounds the tolerated clock skew: a larger one would keep expired tokens alive.
const maxLeeway = 5 * time.Minute

// JWTOptions are optional settings of NewJWT.
type JWTOptions struct {
	// Leeway tolerates clock skew on exp, nbf and iat. Default 30s, at most 5m.
	Leeway time.Duration
	// MaxTokenLifetime refuses tokens valid longer than this in all (exp - iat), such as legacy or
	// hand-minted long-lived tokens. Default DefaultMaxTokenLifetime.
	MaxTokenLifetime time.Duration
	// LocalClusterID is the ID of meshca's own cluster, the cluster of issuers that name none.
	// Default DefaultClusterID.
	LocalClusterID string
	// PassUnknownIssuers answers ErrNoCredential for a token whose issuer is not configured, so that the
	// next authenticator of a Chain (TokenReview) may take it; otherwise such a token is refused.
	PassUnknownIssuers bool
	// Clock returns the current time; default time.Now.
	Clock func() time.Time
}

// DefaultMaxTokenLifetime is the longest token lifetime accepted by default: istio-agent's and ztunnel's
// projected tokens live 12h (expirationSeconds 43200), and Kubernetes' own default is 1h.
const DefaultMaxTokenLifetime = 24 * time.Hour

// NewJWT returns an authenticator for tokens of the given issuers.
func NewJWT(issuers []TokenIssuer, opts JWTOptions) (*JWT, error) {
	if len(issuers) == 0 {
		return nil, errors.New("authn: at least one token issuer is required")
	}
	if opts.Leeway == 0 {
		opts.Leeway = DefaultLeeway
	}
	if opts.Leeway < 0 || opts.Leeway > maxLeeway {
		return nil, errors.New("authn: token leeway must be between 0 and 5m")
	}
	if opts.MaxTokenLifetime == 0 {
		opts.MaxTokenLifetime = DefaultMaxTokenLifetime
	}
	if opts.MaxTokenLifetime < 0 {
		return nil, errors.New("authn: maximum token lifetime must not be negative")
	}
	if opts.LocalClusterID == "" {
		opts.LocalClusterID = DefaultClusterID
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	j := &JWT{issuers: map[string]TokenIssuer{}, leeway: opts.Leeway, maxLifetime: opts.MaxTokenLifetime,
		localClusterID: opts.LocalClusterID, passUnknown: opts.PassUnknownIssuers, clock: opts.Clock}
	for _, is := range issuers {
		if is.ClusterID == "" {
			is.ClusterID = opts.LocalClusterID
		}
		if is.Issuer == "" || is.Keys == nil {
			return nil, errors.New("authn: every token issuer needs an issuer URL and keys")
		}
		if len(is.Audiences) == 0 {
			is.Audiences = []string{DefaultAudience}
		}
		if _, dup := j.issuers[is.Issuer]; dup {
			return nil, fmt.Errorf("authn: token issuer %q configured twice", is.Issuer)
		}
		j.issuers[is.Issuer] = is
	}
	return j, nil
}

// tokenClaims are every claim meshca reads from a token: the registered ones and Kubernetes' private ones,
// decoded in one pass over the payload.
type tokenClaims struct {
	jwt.Claims
	k8sClaims
}

// k8sClaims are the private claims of a Kubernetes bound service-account token.
type k8sClaims struct {
	Kubernetes *struct {
		Namespace      string `json:"namespace"`
		ServiceAccount struct {
			Name string `json:"name"`
			UID  string `json:"uid"`
		} `json:"serviceaccount"`
		Pod *struct {
			Name string `json:"name"`
			UID  string `json:"uid"`
		} `json:"pod"`
		Node *struct {
			Name string `json:"name"`
			UID  string `json:"uid"`
		} `json:"node"`
	} `json:"kubernetes.io"`
}

// Authenticate implements Authenticator.
func (j *JWT) Authenticate(ctx context.Context, req *Request) (*Caller, error) {
	if req.Token == "" {
		return nil, ErrNoCredential
	}
	claims, is, err := j.verify(ctx, req)
	if err != nil {
		return nil, err
	}
	return callerFromClaims(&claims.Claims, &claims.k8sClaims, "jwt", is.ClusterID)
}

// ParseToken decodes a compact JWS by an allowed algorithm and its claims without verifying anything: for
// prechecks that only refuse (kube.TokenReview spares the API server junk with it), fuzzing and diagnostics.
// Never trust its result.
func ParseToken(raw string) (*jwt.Claims, error) {
	if len(raw) > MaxTokenSize {
		return nil, fmt.Errorf("%w: token longer than %d bytes", ErrUnauthenticated, MaxTokenSize)
	}
	tok, err := jwt.ParseSigned(raw, AllowedAlgorithms)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed token: %v", ErrUnauthenticated, err)
	}
	var c jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil {
		return nil, fmt.Errorf("%w: malformed token claims: %v", ErrUnauthenticated, err)
	}
	return &c, nil
}

// verify checks req's token and returns its verified claims and the issuer that verified them.
//
// The payload is JSON-decoded once, before its signature is checked, because the issuer it names chooses the
// keys. Nothing of it is trusted until then: issuerFor only looks the issuer up (and refuses unknown ones),
// and the claims are returned only after the signature over those very payload bytes verified, so they are
// exactly what a decode after verification would give.
func (j *JWT) verify(ctx context.Context, req *Request) (*tokenClaims, *TokenIssuer, error) {
	tok, claims, err := parseSigned(req.Token)
	if err != nil {
		return nil, nil, err
	}
	is, err := j.issuerFor(claims.Issuer, req.ClusterID)
	if err != nil {
		return nil, nil, err
	}
	if err := verifySignature(ctx, tok, is); err != nil {
		return nil, nil, err
	}
	if err := j.checkClaims(&claims.Claims, is); err != nil {
		return nil, nil, err
	}
	return claims, is, nil
}

// parseSigned decodes a compact JWS with one signature by an allowed algorithm and its claims, unverified.
func parseSigned(raw string) (*jwt.JSONWebToken, *tokenClaims, error) {
	if len(raw) > MaxTokenSize {
		return nil, nil, fmt.Errorf("%w: token longer than %d bytes", ErrUnauthenticated, MaxTokenSize)
	}
	tok, err := jwt.ParseSigned(raw, AllowedAlgorithms)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: malformed or unsupported token (asymmetric JWS required): %v",
			ErrUnauthenticated, err)
	}
	if len(tok.Headers) != 1 {
		return nil, nil, fmt.Errorf("%w: token must have exactly one signature", ErrUnauthenticated)
	}
	var unverified tokenClaims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return nil, nil, fmt.Errorf("%w: malformed token claims: %v", ErrUnauthenticated, err)
	}
	return tok, &unverified, nil
}

// issuerFor returns the trusted issuer named by a token's (unverified) iss, if the request's clusterid header
// is that issuer's cluster: its own ID, or empty for the local cluster's issuers. The caller's cluster is
// then the issuer's, never the header's. Neither the header nor the issuer's cluster ID is echoed: the caller
// is not authenticated yet.
func (j *JWT) issuerFor(iss, clusterID string) (*TokenIssuer, error) {
	is, ok := j.issuers[iss]
	if !ok && j.passUnknown {
		return nil, fmt.Errorf("%w: token of an issuer not verified locally", ErrNoCredential)
	}
	if !ok {
		return nil, fmt.Errorf("%w: token issuer %q is not trusted", ErrUnauthenticated, logsafe.String(iss))
	}
	if clusterID != is.ClusterID && (clusterID != "" || is.ClusterID != j.localClusterID) {
		return nil, fmt.Errorf("%w: the clusterid header does not name the cluster of token issuer %q; send "+
			"the cluster ID meshca is configured with for it (authn.issuers[].clusterID)", ErrUnauthenticated,
			is.Issuer)
	}
	return &is, nil
}

// verifySignature checks tok's signature with is's keys. It decodes nothing: parseSigned decoded the very
// payload bytes whose signature this verifies.
func verifySignature(ctx context.Context, tok *jwt.JSONWebToken, is *TokenIssuer) error {
	keys, err := is.Keys.Keys(ctx, tok.Headers[0].KeyID)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != tok.Headers[0].Algorithm {
			continue
		}
		if err := tok.Claims(k.Key); err == nil { // no destination: verify the signature only
			return nil
		}
	}
	return fmt.Errorf("%w: token signature does not verify with any key of issuer %q",
		ErrUnauthenticated, is.Issuer)
}

// checkClaims checks a verified token's times, lifetime and audience.
func (j *JWT) checkClaims(claims *jwt.Claims, is *TokenIssuer) error {
	if claims.Expiry == nil {
		return fmt.Errorf("%w: token has no expiry (exp); use a bound, projected service-account token",
			ErrUnauthenticated)
	}
	now := j.clock()
	err := claims.ValidateWithLeeway(jwt.Expected{Issuer: is.Issuer, Time: now}, j.leeway)
	switch {
	case errors.Is(err, jwt.ErrExpired):
		return fmt.Errorf("%w: token expired at %s", ErrUnauthenticated,
			claims.Expiry.Time().UTC().Format(time.RFC3339))
	case errors.Is(err, jwt.ErrNotValidYet), errors.Is(err, jwt.ErrIssuedInTheFuture):
		return fmt.Errorf("%w: token is not valid yet (nbf/iat in the future; check clocks)", ErrUnauthenticated)
	case err != nil:
		return fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	if life := TokenLifetime(claims.IssuedAt, claims.Expiry, now); life > j.maxLifetime {
		return fmt.Errorf("%w: token lives %s, longer than the %s meshca accepts (authn.maxTokenLifetime); mint "+
			"a shorter-lived projected token", ErrUnauthenticated, life.Round(time.Second), j.maxLifetime)
	}
	if !slices.ContainsFunc(is.Audiences, func(a string) bool { return slices.Contains(claims.Audience, a) }) {
		return fmt.Errorf("%w: token audience does not include %q; mint it with that audience",
			ErrUnauthenticated, is.Audiences)
	}
	return nil
}

// TokenLifetime is how long a token is valid in all: from iat to exp, or from now when it has no iat.
func TokenLifetime(iat, exp *jwt.NumericDate, now time.Time) time.Duration {
	from := now
	if iat != nil {
		from = iat.Time()
	}
	return exp.Time().Sub(from)
}

// callerFromClaims takes the identity from a verified token's kubernetes.io claims, which must agree with
// its subject system:serviceaccount:<namespace>:<name>.
func callerFromClaims(c *jwt.Claims, k *k8sClaims, method, clusterID string) (*Caller, error) {
	parts := strings.Split(c.Subject, ":")
	if len(parts) != 4 || parts[0] != "system" || parts[1] != "serviceaccount" {
		return nil, fmt.Errorf("%w: token subject %q is not a service account", ErrUnauthenticated, c.Subject)
	}
	caller := &Caller{Namespace: parts[2], ServiceAccount: parts[3], Method: method, Issuer: c.Issuer,
		ExpiresAt: c.Expiry.Time(), ClusterID: clusterID}
	if k.Kubernetes != nil {
		if k.Kubernetes.Namespace != caller.Namespace || k.Kubernetes.ServiceAccount.Name != caller.ServiceAccount {
			return nil, fmt.Errorf("%w: token subject and kubernetes.io claims disagree", ErrUnauthenticated)
		}
		if p := k.Kubernetes.Pod; p != nil {
			caller.PodName, caller.PodUID = p.Name, p.UID
		}
		if n := k.Kubernetes.Node; n != nil {
			caller.NodeName = n.Name
		}
	}
	if caller.Namespace == "" || caller.ServiceAccount == "" {
		return nil, fmt.Errorf("%w: token subject %q has an empty namespace or name", ErrUnauthenticated, c.Subject)
	}
	return caller, nil
}
