package authn

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/meshca/meshca/csr"
)

var (
	// ErrNoCredential means the request carries no credential of the kind an authenticator handles, so the
	// next authenticator may try. It never reaches a caller on its own.
	ErrNoCredential = errors.New("no credential of this kind")
	// ErrUnauthenticated means a credential was presented and refused.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrUnavailable means the authenticator could not reach what it needs (JWKS endpoint, API server); the
	// caller may retry.
	ErrUnavailable = errors.New("authenticator unavailable")
	// ErrImpersonationDenied means a caller asked for another workload's identity and may not.
	ErrImpersonationDenied = errors.New("impersonation denied")
)

const (
	// MaxTokenSize bounds a bearer token. Kubernetes projected tokens are about 1 KiB.
	MaxTokenSize = 16 << 10
	// DefaultAudience is the audience istio-agent's service-account tokens are minted for, and the one
	// accepted when none is configured.
	DefaultAudience = "istio-ca"
	// DefaultClusterID is istio-agent's default cluster ID, sent in its clusterid header, and the local
	// cluster's ID when none is configured.
	DefaultClusterID = "Kubernetes"
)

// Request holds the credentials of one call.
type Request struct {
	// Token is the bearer token, without the "Bearer " prefix; empty when none was sent.
	Token string
	// PeerCertificates is the TLS client certificate chain as presented (not yet verified), leaf first.
	PeerCertificates []*x509.Certificate
	// ClusterID is the caller's cluster as sent in the clusterid header; empty for the local cluster.
	ClusterID string
}

// Caller is an authenticated workload.
type Caller struct {
	Namespace      string
	ServiceAccount string
	// PodName, PodUID and NodeName come from bound service-account tokens when present.
	PodName, PodUID, NodeName string
	// Method names the authenticator that proved the identity: "jwt", "tokenreview", "client-cert".
	Method string
	// Issuer is the token issuer or the certificate's trust domain.
	Issuer string
	// ExpiresAt is when the credential stops being valid.
	ExpiresAt time.Time
	// ClusterID is the cluster whose credentials proved the identity: the verifying token issuer's or API
	// server's, never the clusterid header alone. Empty when the credential proves no cluster (a client
	// certificate); such a caller is in no cluster for decisions that need one (impersonation).
	ClusterID string
}

// Authenticator proves who is calling.
type Authenticator interface {
	// Authenticate returns the caller proven by req's credentials. It returns an error wrapping
	// ErrNoCredential when req holds none of the kind it handles, ErrUnauthenticated when the credential is
	// refused, and ErrUnavailable when it could not decide.
	Authenticate(ctx context.Context, req *Request) (*Caller, error)
}

// Chain tries authenticators in order and returns the first answer that is not ErrNoCredential. A refused
// credential is final: a bad token does not fall back to a client certificate.
type Chain []Authenticator

// Authenticate implements Authenticator.
func (c Chain) Authenticate(ctx context.Context, req *Request) (*Caller, error) {
	for _, a := range c {
		caller, err := a.Authenticate(ctx, req)
		if errors.Is(err, ErrNoCredential) {
			continue
		}
		return caller, err
	}
	return nil, fmt.Errorf("%w: no credential: send \"authorization: Bearer <service-account token>\" "+
		"or a client certificate issued by this CA", ErrUnauthenticated)
}

// Impersonator decides whether an authenticated node agent (ztunnel) may obtain a certificate for another
// workload's identity (Istio's ImpersonatedIdentity).
type Impersonator interface {
	// CheckImpersonation returns nil when caller may act for target, an error wrapping ErrImpersonationDenied
	// when it may not, or one wrapping ErrUnavailable when it could not decide.
	CheckImpersonation(ctx context.Context, caller *Caller, target csr.Identity) error
}
