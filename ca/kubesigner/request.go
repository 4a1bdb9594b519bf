package kubesigner

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/csr"
)

// Method is the authn method named in audit records for requests that come through a
// CertificateSigningRequest.
const Method = "k8s-csr"

// workloadUsages are the key usages a workload certificate may have, as istiod asks for them (it asks for key
// encipherment whatever the key; the certificate gets it only for RSA keys, by meshca's leaf profile).
var workloadUsages = []certv1.KeyUsage{certv1.UsageDigitalSignature, certv1.UsageKeyEncipherment,
	certv1.UsageServerAuth, certv1.UsageClientAuth}

// pending reports whether r is a request this signer must answer: for a signer it owns, approved, not
// denied, and neither signed nor failed yet. Everything else is left alone.
func pending(r *certv1.CertificateSigningRequest, router Router) bool {
	if !router.Owns(r.Spec.SignerName) || len(r.Status.Certificate) > 0 {
		return false
	}
	approved := false
	for _, c := range r.Status.Conditions {
		switch {
		case c.Status != corev1.ConditionTrue:
		case c.Type == certv1.CertificateDenied || c.Type == certv1.CertificateFailed:
			return false
		case c.Type == certv1.CertificateApproved:
			approved = true
		}
	}
	return approved
}

// delegated turns a pending request into the issuance core's request. Problems the core cannot see (the
// requester, the usages, the routing) become its Refusal, so they are counted and audited like the rest.
func delegated(r *certv1.CertificateSigningRequest, requesters []string, router Router) *ca.DelegatedRequest {
	req := &ca.DelegatedRequest{CSR: r.Spec.Request, Peer: "csr/" + ca.Bounded(r.Name)}
	if ns, sa, err := serviceAccount(r.Spec.Username); err == nil {
		req.Authority = &authn.Caller{Namespace: ns, ServiceAccount: sa, Method: Method}
	}
	if !slices.Contains(requesters, r.Spec.Username) {
		req.Refusal = fmt.Errorf("%w: requester %q is not an allowed registration authority "+
			"(k8sSigner.requesters)", ca.ErrPermissionDenied, ca.Bounded(r.Spec.Username))
		return req
	}
	for _, u := range r.Spec.Usages {
		switch {
		case u == certv1.UsageCertSign || u == certv1.UsageCRLSign:
			req.Refusal = fmt.Errorf("%w: %w: usage %q", ca.ErrPermissionDenied, ca.ErrCARequested, u)
		case !slices.Contains(workloadUsages, u):
			req.Refusal = fmt.Errorf("%w: usage %q is not issued to workloads; ask for digital signature, "+
				"key encipherment, server auth and client auth only", ca.ErrPermissionDenied, ca.Bounded(string(u)))
		}
		if req.Refusal != nil {
			return req
		}
	}
	if s := r.Spec.ExpirationSeconds; s != nil {
		if *s <= 0 {
			req.Refusal = fmt.Errorf("%w: expirationSeconds %d is not positive", ca.ErrInvalidRequest, *s)
			return req
		}
		req.TTL = time.Duration(*s) * time.Second
	}
	backends, err := router.Route(r.Spec.SignerName, namespaceOf(r.Spec.Request))
	if err != nil {
		req.Refusal = err
		return req
	}
	req.Backends = backends
	return req
}

// namespaceOf is the namespace of the SPIFFE ID the CSR asks for, for routing only; "" when the CSR does not
// parse or names none. The issuance core parses and checks the CSR in full.
func namespaceOf(csrPEM []byte) string {
	block, _ := pem.Decode(csrPEM)
	if block == nil {
		return ""
	}
	c, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil || len(c.URIs) == 0 {
		return ""
	}
	id, err := csr.ParseURI(c.URIs[0])
	if err != nil {
		return ""
	}
	return id.Namespace
}

// conditionReason turns a ca.Class reason ("identity_mismatch") into a Kubernetes condition reason
// ("IdentityMismatch").
func conditionReason(reason string) string {
	var b strings.Builder
	for part := range strings.SplitSeq(reason, "_") {
		if part == "" {
			continue
		}
		r := []rune(part)
		b.WriteRune(unicode.ToUpper(r[0]))
		b.WriteString(string(r[1:]))
	}
	return b.String()
}

// maxMessage bounds the Failed condition's message.
const maxMessage = 1024

// failedCondition is the condition that tells istiod (and whoever reads the request) why meshca refused it.
func failedCondition(class ca.Class, err error) certv1.CertificateSigningRequestCondition {
	msg := class.CallerMessage(err)
	if len(msg) > maxMessage {
		msg = msg[:maxMessage] + "..."
	}
	return certv1.CertificateSigningRequestCondition{Type: certv1.CertificateFailed, Status: corev1.ConditionTrue,
		Reason: conditionReason(class.Reason), Message: "meshca refused to sign: " + msg}
}

// chainPEM is the certificate chain as status.certificate carries it: leaf first, then the intermediates and
// the root, so istiod can split it and verify it against its CA file.
func chainPEM(chain []*x509.Certificate) []byte {
	var out []byte
	for _, c := range chain {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}
