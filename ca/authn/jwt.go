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
	// ClusterID, when set, is the only clusterid header this issuer's tokens are accepted with.
	ClusterID string
}

// JWT authenticates Kubernetes service-account tokens by verifying them locally against their issuer's keys.
type JWT struct {
	issuers map[string]TokenIssuer
	leeway  time.Duration
	clock   func() time.Time
}

// DefaultLeeway is the clock skew tolerated on token times when none is configured.
const DefaultLeeway = 30 * time.Second

// maxLeeway bounds the tolerated clock skew: a larger one would keep expired tokens alive.
const maxLeeway = 5 * time.Minute

// JWTOptions are optional settings of NewJWT.
type JWTOptions struct {
	// Leeway tolerates clock skew on exp, nbf and iat. Default 30s, at most 5m.
	Leeway time.Duration
	// Clock returns the current time; default time.Now.
	Clock func() time.Time
}

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
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	j := &JWT{issuers: map[string]TokenIssuer{}, leeway: opts.Leeway, clock: opts.Clock}
	for _, is := range issuers {
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
	claims, k8s, err := j.verify(ctx, req)
	if err != nil {
		return nil, err
	}
	return callerFromClaims(claims, k8s, "jwt", req.ClusterID)
}

func (j *JWT) verify(ctx context.Context, req *Request) (*jwt.Claims, *k8sClaims, error) {
	if len(req.Token) > MaxTokenSize {
		return nil, nil, fmt.Errorf("%w: token longer than %d bytes", ErrUnauthenticated, MaxTokenSize)
	}
	tok, err := jwt.ParseSigned(req.Token, AllowedAlgorithms)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: malformed or unsupported token (asymmetric JWS required): %v",
			ErrUnauthenticated, err)
	}
	if len(tok.Headers) != 1 {
		return nil, nil, fmt.Errorf("%w: token must have exactly one signature", ErrUnauthenticated)
	}
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return nil, nil, fmt.Errorf("%w: malformed token claims: %v", ErrUnauthenticated, err)
	}
	is, ok := j.issuers[unverified.Issuer]
	if !ok {
		return nil, nil, fmt.Errorf("%w: token issuer %q is not trusted", ErrUnauthenticated, unverified.Issuer)
	}
	if is.ClusterID != "" && req.ClusterID != "" && is.ClusterID != req.ClusterID {
		return nil, nil, fmt.Errorf("%w: token issuer %q does not serve cluster %q", ErrUnauthenticated, is.Issuer,
			req.ClusterID)
	}
	keys, err := is.Keys.Keys(ctx, tok.Headers[0].KeyID)
	if err != nil {
		return nil, nil, err
	}
	var claims jwt.Claims
	var k8s k8sClaims
	verified := false
	for _, k := range keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != tok.Headers[0].Algorithm {
			continue
		}
		if err := tok.Claims(k.Key, &claims, &k8s); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		return nil, nil, fmt.Errorf("%w: token signature does not verify with any key of issuer %q",
			ErrUnauthenticated, is.Issuer)
	}
	if claims.Expiry == nil {
		return nil, nil, fmt.Errorf("%w: token has no expiry (exp); use a bound, projected service-account token",
			ErrUnauthenticated)
	}
	err = claims.ValidateWithLeeway(jwt.Expected{Issuer: is.Issuer, Time: j.clock()}, j.leeway)
	switch {
	case errors.Is(err, jwt.ErrExpired):
		return nil, nil, fmt.Errorf("%w: token expired at %s", ErrUnauthenticated,
			claims.Expiry.Time().UTC().Format(time.RFC3339))
	case errors.Is(err, jwt.ErrNotValidYet), errors.Is(err, jwt.ErrIssuedInTheFuture):
		return nil, nil, fmt.Errorf("%w: token is not valid yet (nbf/iat in the future; check clocks)",
			ErrUnauthenticated)
	case err != nil:
		return nil, nil, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	if !slices.ContainsFunc(is.Audiences, func(a string) bool { return slices.Contains(claims.Audience, a) }) {
		return nil, nil, fmt.Errorf("%w: token audience %q does not include %q; mint it with that audience",
			ErrUnauthenticated, []string(claims.Audience), is.Audiences)
	}
	return &claims, &k8s, nil
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
