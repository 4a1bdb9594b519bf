package kubesigner

import (
	"errors"
	"testing"

	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/meshca/meshca/ca"
)

func condition(t certv1.RequestConditionType, s corev1.ConditionStatus) certv1.CertificateSigningRequestCondition {
	return certv1.CertificateSigningRequestCondition{Type: t, Status: s}
}

func status(cs ...certv1.CertificateSigningRequestCondition) certv1.CertificateSigningRequestStatus {
	return certv1.CertificateSigningRequestStatus{Conditions: cs}
}

// Only approved, unanswered requests for an owned signer are pending.
func TestPending(t *testing.T) {
	router := StaticRouter{{Name: "meshca.io/workloads"}}
	approved := condition(certv1.CertificateApproved, corev1.ConditionTrue)
	cases := []struct {
		name string
		r    certv1.CertificateSigningRequest
		want bool
	}{
		{"an approved request for meshca's signer is pending", certv1.CertificateSigningRequest{
			Spec:   certv1.CertificateSigningRequestSpec{SignerName: "meshca.io/workloads"},
			Status: status(approved)},
			true},
		{"another signer's request is not", certv1.CertificateSigningRequest{
			Spec:   certv1.CertificateSigningRequestSpec{SignerName: "example.com/x"},
			Status: status(approved)},
			false},
		{"an unapproved request is not", certv1.CertificateSigningRequest{
			Spec: certv1.CertificateSigningRequestSpec{SignerName: "meshca.io/workloads"}}, false},
		{"an approval with status False is not one", certv1.CertificateSigningRequest{
			Spec: certv1.CertificateSigningRequestSpec{SignerName: "meshca.io/workloads"},
			Status: certv1.CertificateSigningRequestStatus{Conditions: []certv1.CertificateSigningRequestCondition{
				condition(certv1.CertificateApproved, corev1.ConditionFalse)}}}, false},
		{"a denied request is not", certv1.CertificateSigningRequest{
			Spec: certv1.CertificateSigningRequestSpec{SignerName: "meshca.io/workloads"},
			Status: certv1.CertificateSigningRequestStatus{Conditions: []certv1.CertificateSigningRequestCondition{
				approved, condition(certv1.CertificateDenied, corev1.ConditionTrue)}}}, false},
		{"a failed request is not", certv1.CertificateSigningRequest{
			Spec: certv1.CertificateSigningRequestSpec{SignerName: "meshca.io/workloads"},
			Status: certv1.CertificateSigningRequestStatus{Conditions: []certv1.CertificateSigningRequestCondition{
				approved, condition(certv1.CertificateFailed, corev1.ConditionTrue)}}}, false},
		{"a signed request is not", certv1.CertificateSigningRequest{
			Spec: certv1.CertificateSigningRequestSpec{SignerName: "meshca.io/workloads"},
			Status: certv1.CertificateSigningRequestStatus{Certificate: []byte("x"),
				Conditions: []certv1.CertificateSigningRequestCondition{approved}}}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := pending(&c.r, router); got != c.want {
				t.Errorf("pending = %v, want %v", got, c.want)
			}
		})
	}
}

// The transport's own checks become refusals of the kinds the core counts.
func TestDelegated(t *testing.T) {
	router := StaticRouter{{Name: "meshca.io/workloads", Backends: []string{"vault"}}}
	requesters := []string{DefaultRequester}
	secs := func(s int32) *int32 { return &s }
	cases := []struct {
		name  string
		spec  certv1.CertificateSigningRequestSpec
		want  error
		check func(*testing.T, *ca.DelegatedRequest)
	}{
		{"istiod's request is routed with its lifetime", certv1.CertificateSigningRequestSpec{
			SignerName: "meshca.io/workloads", Username: DefaultRequester, Usages: workloadUsages,
			ExpirationSeconds: secs(3600)}, nil, func(t *testing.T, r *ca.DelegatedRequest) {
			if r.TTL.Seconds() != 3600 || len(r.Backends) != 1 || r.Authority.ServiceAccount != "istiod" {
				t.Errorf("TTL %s, backends %v, authority %+v", r.TTL, r.Backends, r.Authority)
			}
		}},
		{"another requester is refused", certv1.CertificateSigningRequestSpec{SignerName: "meshca.io/workloads",
			Username: "system:serviceaccount:default:x"}, ca.ErrPermissionDenied, nil},
		{"a user who is not a service account is refused", certv1.CertificateSigningRequestSpec{
			SignerName: "meshca.io/workloads", Username: "admin"}, ca.ErrPermissionDenied, nil},
		{"crl sign is a CA request", certv1.CertificateSigningRequestSpec{SignerName: "meshca.io/workloads",
			Username: DefaultRequester, Usages: []certv1.KeyUsage{certv1.UsageCRLSign}}, ca.ErrCARequested, nil},
		{"email protection is refused", certv1.CertificateSigningRequestSpec{SignerName: "meshca.io/workloads",
			Username: DefaultRequester, Usages: []certv1.KeyUsage{certv1.UsageEmailProtection}},
			ca.ErrPermissionDenied, nil},
		{"a non-positive lifetime is refused", certv1.CertificateSigningRequestSpec{
			SignerName: "meshca.io/workloads", Username: DefaultRequester, ExpirationSeconds: secs(-1)},
			ca.ErrInvalidRequest, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := delegated(&certv1.CertificateSigningRequest{Spec: c.spec}, requesters, router)
			if !errors.Is(r.Refusal, c.want) || (c.want == nil) != (r.Refusal == nil) {
				t.Fatalf("refusal %v, want %v", r.Refusal, c.want)
			}
			if c.check != nil {
				c.check(t, r)
			}
		})
	}
}

// Class reasons become CamelCase condition reasons.
func TestConditionReason(t *testing.T) {
	for in, want := range map[string]string{"identity_mismatch": "IdentityMismatch", "ca_requested": "CaRequested",
		"internal": "Internal", "": "", "a__b_": "AB"} {
		if got := conditionReason(in); got != want {
			t.Errorf("conditionReason(%q) = %q, want %q", in, got, want)
		}
	}
}

// The transport's decoding never panics, whatever the requester, usages and CSR bytes.
func FuzzDelegated(f *testing.F) {
	f.Add(DefaultRequester, "digital signature",
		[]byte("-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----\n"), int32(3600))
	f.Add("system:serviceaccount::", "cert sign", []byte{}, int32(-5))
	f.Add("system:serviceaccount:a:b:c", "", []byte("\x00"), int32(0))
	router := StaticRouter{{Name: "meshca.io/workloads"}}
	f.Fuzz(func(t *testing.T, user, usage string, req []byte, secs int32) {
		r := delegated(&certv1.CertificateSigningRequest{Spec: certv1.CertificateSigningRequestSpec{
			SignerName: "meshca.io/workloads", Username: user, Usages: []certv1.KeyUsage{certv1.KeyUsage(usage)},
			Request: req, ExpirationSeconds: &secs}}, append([]string{user}, DefaultRequester), router)
		if r.Refusal == nil && (secs <= 0 || !contains(workloadUsages, usage)) {
			t.Fatalf("accepted usage %q, lifetime %d", usage, secs)
		}
		if r.Authority != nil {
			if _, _, err := serviceAccount(user); err != nil {
				t.Fatalf("authority from %q, which is not a service account", user)
			}
		}
		_ = namespaceOf(req)
		_ = conditionReason(user)
	})
}

func contains(us []certv1.KeyUsage, u string) bool {
	for _, x := range us {
		if string(x) == u {
			return true
		}
	}
	return false
}
