package backends

import (
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/url"
	"time"
)

// Sentinel errors shared by every backend. Wrap them with fmt.Errorf("vault: ...: %w", ErrUnavailable) so the
// issuance core can match them with errors.Is.
var (
	// ErrUnavailable means the backend could not be reached or is not ready (network error, sealed Vault,
	// step-ca down, deadline exceeded). The core may fail over to the next backend and callers may retry.
	ErrUnavailable = errors.New("backend unavailable")
	// ErrRefused means the backend answered and declined the request (role policy, template, quota). The core
	// does not fail over on it: another backend saying yes would defeat the first one's policy.
	ErrRefused = errors.New("backend refused the request")
	// ErrBadChain means the backend returned something that is not a usable certificate chain for the request.
	ErrBadChain = errors.New("backend returned an invalid certificate chain")
)

// Backend issues certificates for requests that meshca has already authenticated and authorised.
//
// Implementations must be safe for concurrent use and must not hold a lock across a remote call.
type Backend interface {
	// Sign issues a certificate for req. The returned chain is parsed and ordered leaf first, then the
	// intermediates, then the root; the leaf is exactly the workload certificate req asks for, as CheckLeaf
	// defines it (implementations call CheckLeaf before returning). Sign must not modify req, must honour ctx's
	// deadline, and returns errors wrapping ErrUnavailable or ErrRefused where they apply (ErrRefused also for a
	// request the backend will not send to its CA).
	Sign(ctx context.Context, req *SignRequest) (*SignResponse, error)
	// Roots returns the trust anchors that certificates from this backend chain to; during a CA rotation there
	// may be several. It is called on the signing path and must be cheap: remote backends cache their roots
	// (pinned by fingerprint) and refresh them in the background.
	Roots(ctx context.Context) ([]*x509.Certificate, error)
}

// SignRequest is one certificate to issue. Every field is decided by meshca's policy; the CSR is carried only
// for backends whose API needs one (Vault, step-ca), and its SANs have already been checked against these.
type SignRequest struct {
	// CSR is the caller's verified certificate request. Backends must not take identity from it.
	CSR *x509.CertificateRequest
	// PublicKey is the key to certify (the CSR's key).
	PublicKey crypto.PublicKey
	// Subject is the subject to put in the certificate; usually empty (SPIFFE identities live in the SAN).
	Subject pkix.Name
	// URIs are the exact URI SANs, normally the one SPIFFE ID of the caller.
	URIs []*url.URL
	// DNSNames and IPAddresses are the exact DNS and IP SANs, usually none for workloads.
	DNSNames    []string
	IPAddresses []net.IP
	// TTL is the requested lifetime. A backend may shorten it (for example to its CA's own expiry) but never
	// lengthen it; the core reports any shortening.
	TTL time.Duration
}

// SignResponse is an issued certificate.
type SignResponse struct {
	// Chain is leaf first, root last. It always holds at least the leaf and the root, even when the signing CA
	// is the root itself.
	Chain []*x509.Certificate
	// SelfChecked is set only by a backend that signs in this process and verified the leaf's signature with
	// its CA certificate's public key right after making it (x509.CreateCertificate refuses a signer whose key
	// is not the CA certificate's and checks the signature it made: the self-check that protects the CA key).
	// While Chain[0] and Chain[1] are still exactly those two certificates, the core does not verify that
	// signature a second time; it still checks the leaf (CheckLeaf), its issuer name and validity, and that
	// Chain[1:] verified to the backend's roots. A backend that receives its chain from elsewhere (Vault,
	// step-ca) must leave it nil.
	SelfChecked *SelfCheck
	// Roots are the trust anchors the backend signed under, taken in one snapshot with the signing CA, so that
	// a CA reloaded between Sign and the core's check cannot make a good leaf look foreign. The core accepts
	// them only where the backend also serves them from Roots (just before or just after Sign): a backend
	// cannot choose what the leaf is checked against. Nil means the core asks Roots after Sign.
	Roots []*x509.Certificate
}

// SelfCheck names the leaf whose signature was verified in this process, and the CA certificate whose key
// verified it.
type SelfCheck struct {
	Leaf, Issuer *x509.Certificate
}

// SignatureChecked reports whether Chain[0]'s signature was verified with Chain[1]'s key in this process
// (SelfChecked, for these very certificates).
func (r *SignResponse) SignatureChecked() bool {
	return r.SelfChecked != nil && len(r.Chain) >= 2 && r.SelfChecked.Leaf == r.Chain[0] &&
		r.SelfChecked.Issuer == r.Chain[1]
}

// Leaf returns the issued certificate.
func (r *SignResponse) Leaf() *x509.Certificate { return r.Chain[0] }

// Revoker is implemented by backends that can revoke what they issued.
type Revoker interface {
	// Revoke marks the certificate with the given serial (and, when known, PEM) as revoked.
	Revoke(ctx context.Context, req *RevokeRequest) error
}

// RevokeRequest identifies one certificate to revoke.
type RevokeRequest struct {
	SerialNumber *big.Int
	// Certificate is the issued certificate when the caller has it; some backends (Vault no_store roles) can
	// revoke only by certificate, not by serial.
	Certificate *x509.Certificate
	// Reason is an RFC 5280 §5.3.1 reason code.
	Reason int
}

// CRLSigner is implemented by backends that can sign a CRL that meshca built (the file backend).
type CRLSigner interface {
	// SignCRL signs rl with the issuing CA's key and returns the DER CRL.
	SignCRL(ctx context.Context, rl *x509.RevocationList) ([]byte, error)
}

// CRLSource is implemented by backends that own revocation themselves (Vault, step-ca): meshca publishes
// their CRL instead of building one.
type CRLSource interface {
	// CRL returns the backend's current DER-encoded CRL.
	CRL(ctx context.Context) ([]byte, error)
}

// Checker is implemented by backends that can tell whether they are ready to sign. /readyz and the gRPC
// health service report its result.
type Checker interface {
	Check(ctx context.Context) error
}

// PostQuantumRooter is implemented by backends that also sign with an ML-DSA CA (RFC 9881) for CSRs whose key
// is ML-DSA. Its roots are kept apart from Roots, which feeds the root-cert.pem Envoy loads: Envoy cannot load
// ML-DSA certificates yet (envoy#42893), and one unparseable root would break the whole bundle.
type PostQuantumRooter interface {
	PostQuantumRoots(ctx context.Context) ([]*x509.Certificate, error)
}

// Chainer is implemented by backends that know their issuing chain (signing CA first, root last) without
// signing, so meshca can export its expiry before the first request.
type Chainer interface {
	CAChain(ctx context.Context) ([]*x509.Certificate, error)
}
