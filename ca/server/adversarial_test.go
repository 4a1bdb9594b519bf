package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	pb "istio.io/api/security/v1alpha1"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/internal/devtoken"
)

// adversarial is one request meshca must refuse: sent as token (and headers), refused with want, counted
// under reason.
type adversarial struct {
	name    string
	token   string
	headers []string // extra metadata key/value pairs
	req     *pb.IstioCertificateRequest
	want    codes.Code
	reason  string
}

// lockedBuffer is a log sink safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestAdversarialRequests sends at least 60 distinct hostile requests end to end over gRPC (issue 15): each
// is refused with its code, returns nothing, is counted under its reason, is audited, and its message stays
// bounded whatever the caller sent.
func TestAdversarialRequests(t *testing.T) {
	var logs lockedBuffer
	m := catest.StartMeshca(t, catest.MeshcaOptions{Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
		Limits: ca.Limits{FailedAuthnRate: -1}})
	conn := m.Dial(t)
	cases := append(credentialCases(t, m), identityCases(t, m)...)
	cases = append(cases, csrCases(t, m)...)
	cases = append(cases, requestCases(t, m)...)
	if len(cases) < 60 {
		t.Fatalf("only %d adversarial requests; keep at least 60", len(cases))
	}
	seen := map[string]bool{}
	for _, tc := range cases {
		if seen[tc.name] {
			t.Fatalf("two cases are named %q", tc.name)
		}
		seen[tc.name] = true
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := metricValue(t, m, "meshca_csr_requests_total", "reason", tc.reason)
			audited := strings.Count(logs.String(), "certificate request not served")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			kv := tc.headers
			if tc.token != "" {
				kv = append([]string{"authorization", "Bearer " + tc.token}, kv...)
			}
			if len(kv) > 0 {
				ctx = metadata.AppendToOutgoingContext(ctx, kv...)
			}
			resp, err := pb.NewIstioCertificateServiceClient(conn).CreateCertificate(ctx, tc.req)
			if got := status.Code(err); got != tc.want {
				t.Fatalf("code = %v (%v), want %v", got, err, tc.want)
			}
			if resp != nil {
				t.Fatalf("a refused request returned %d certificates", len(resp.GetCertChain()))
			}
			if n := len(status.Convert(err).Message()); n > 1024 {
				t.Errorf("the refusal's message is %d bytes: caller-supplied content must stay bounded", n)
			}
			if tc.reason == "" {
				return // refused by gRPC itself, before meshca
			}
			if got := metricValue(t, m, "meshca_csr_requests_total", "reason", tc.reason) - before; got != 1 {
				t.Errorf("meshca_csr_requests_total{reason=%q} grew by %v, want 1", tc.reason, got)
			}
			if n := strings.Count(logs.String(), "certificate request not served") - audited; n != 1 {
				t.Errorf("%d audit records for the request, want 1", n)
			}
		})
	}
	if n := metricValue(t, m, "citadel_server_success_cert_issuance_count", "", ""); n != 0 {
		t.Fatalf("%v certificates issued to adversarial requests", n)
	}
	if strings.Contains(logs.String(), strings.Repeat("Z", 100)) {
		t.Error("a caller's long string reached the log unbounded")
	}
}

func goodRequest(t *testing.T) *pb.IstioCertificateRequest {
	t.Helper()
	good, _ := catest.WorkloadCSR(t, sleepID)
	return &pb.IstioCertificateRequest{Csr: string(good)}
}

func credentialCases(t *testing.T, m *catest.Meshca) []adversarial {
	good := goodRequest(t)
	tok := mint(t, m.Tokens, devtoken.Claims{})
	other, err := devtoken.Generate("https://other.example/issuer")
	if err != nil {
		t.Fatal(err)
	}
	forger, err := devtoken.Generate(m.Tokens.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	swapped := strings.Split(mint(t, m.Tokens, devtoken.Claims{Namespace: "kube-system", ServiceAccount: "admin"}),
		".")
	u := codes.Unauthenticated
	return []adversarial{
		{"no credential at all", "", nil, good, u, "unauthenticated"},
		{"a Basic authorization header", "", []string{"authorization", "Basic YWRtaW46YWRtaW4="}, good, u,
			"unauthenticated"},
		{"an empty bearer token", "", []string{"authorization", "Bearer "}, good, u, "unauthenticated"},
		{"a token that is not a JWT", "not-a-jwt", nil, good, u, "unauthenticated"},
		{"a token of three empty segments", "..", nil, good, u, "unauthenticated"},
		{"an unsigned (alg none) token", unsignedToken(m.Tokens.Issuer), nil, good, u, "unauthenticated"},
		{"an HMAC token keyed with a guessable secret", hmacToken(t, m.Tokens.Issuer), nil, good, u, "unauthenticated"},
		{"a token from an untrusted issuer", mint(t, other, devtoken.Claims{}), nil, good, u, "unauthenticated"},
		{"a token signed by a forger under the trusted issuer's name", mint(t, forger, devtoken.Claims{}), nil, good,
			u, "unauthenticated"},
		{"a token whose signature was cut off", parts[0] + "." + parts[1] + ".", nil, good, u, "unauthenticated"},
		{"a token whose payload was swapped for another account's", parts[0] + "." + swapped[1] + "." + parts[2],
			nil, good, u, "unauthenticated"},
		{"an expired token", mint(t, m.Tokens, devtoken.Claims{IssuedAt: time.Now().Add(-3 * time.Hour),
			TTL: time.Hour}), nil, good, u, "unauthenticated"},
		{"a token not valid yet", mint(t, m.Tokens, devtoken.Claims{NotBefore: time.Now().Add(time.Hour)}), nil, good,
			u, "unauthenticated"},
		{"a token issued in the future", mint(t, m.Tokens, devtoken.Claims{IssuedAt: time.Now().Add(time.Hour)}), nil,
			good, u, "unauthenticated"},
		{"a token for another audience", mint(t, m.Tokens, devtoken.Claims{Audiences: []string{"vault"}}), nil, good,
			u, "unauthenticated"},
		{"a token living longer than the maximum token lifetime",
			mint(t, m.Tokens, devtoken.Claims{TTL: authn.DefaultMaxTokenLifetime + time.Hour}), nil, good, u,
			"unauthenticated"},
		{"a token whose subject is not a service account",
			mint(t, m.Tokens, devtoken.Claims{Namespace: "system:masters", ServiceAccount: "admin"}), nil, good, u,
			"unauthenticated"},
		{"a valid token claiming another cluster", tok, []string{"clusterid", "cluster-b"}, good, u, "unauthenticated"},
		{"a valid token with a 4 KiB clusterid", tok, []string{"clusterid", strings.Repeat("Z", 4096)}, good, u,
			"unauthenticated"},
		{"a token with an untrusted issuer of 8 KiB", longIssuerToken(t), nil, good, u, "unauthenticated"},
	}
}

// longIssuerToken is a validly signed token whose issuer is 8 KiB long.
func longIssuerToken(t *testing.T) string {
	t.Helper()
	d, err := devtoken.Generate("https://" + strings.Repeat("Z", 8<<10))
	if err != nil {
		t.Fatal(err)
	}
	return mint(t, d, devtoken.Claims{})
}

func identityCases(t *testing.T, m *catest.Meshca) []adversarial {
	tok := mint(t, m.Tokens, devtoken.Claims{})
	withURIs := func(uris ...string) *pb.IstioCertificateRequest {
		b, _ := catest.CSR(t, catest.CSROptions{URIs: uris})
		return &pb.IstioCertificateRequest{Csr: string(b)}
	}
	p := codes.PermissionDenied
	mismatch := func(name, uri string) adversarial {
		return adversarial{name, tok, nil, withURIs(uri), p, "identity_mismatch"}
	}
	return []adversarial{
		mismatch("a CSR for another service account", "spiffe://cluster.local/ns/default/sa/admin"),
		mismatch("a CSR for another namespace", "spiffe://cluster.local/ns/kube-system/sa/sleep"),
		mismatch("a CSR for a foreign trust domain", "spiffe://evil.example/ns/default/sa/sleep"),
		mismatch("a CSR with a trust domain differing in case", "spiffe://Cluster.Local/ns/default/sa/sleep"),
		mismatch("a CSR with a path appended to the SPIFFE ID", "spiffe://cluster.local/ns/default/sa/sleep/x"),
		mismatch("a CSR with a dot-dot path", "spiffe://cluster.local/ns/default/sa/../../ns/kube-system/sa/admin"),
		mismatch("a CSR with a query after the SPIFFE ID", "spiffe://cluster.local/ns/default/sa/sleep?admin=1"),
		mismatch("a CSR with a fragment after the SPIFFE ID", "spiffe://cluster.local/ns/default/sa/sleep#admin"),
		mismatch("a CSR with a port in the trust domain", "spiffe://cluster.local:443/ns/default/sa/sleep"),
		mismatch("a CSR with userinfo in the trust domain", "spiffe://admin@cluster.local/ns/default/sa/sleep"),
		mismatch("a CSR naming an https URI", "https://cluster.local/ns/default/sa/sleep"),
		mismatch("a CSR with a percent-encoded slash", "spiffe://cluster.local/ns/default%2Fsa%2Fadmin/sa/sleep"),
		{"a CSR with the caller's ID and another", tok, nil, withURIs(sleepID,
			"spiffe://cluster.local/ns/default/sa/admin"), p, "forbidden_san"},
		{"a CSR with the caller's ID twice", tok, nil, withURIs(sleepID, sleepID), p, "forbidden_san"},
	}
}

// csrWith is a request whose CSR asks for sleepID (unless o names URIs) and what o adds.
func csrWith(t *testing.T, o catest.CSROptions) *pb.IstioCertificateRequest {
	t.Helper()
	if o.URIs == nil {
		o.URIs = []string{sleepID}
	}
	b, _ := catest.CSR(t, o)
	return &pb.IstioCertificateRequest{Csr: string(b)}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func csrCases(t *testing.T, m *catest.Meshca) []adversarial {
	tok := mint(t, m.Tokens, devtoken.Claims{})
	ekus := func(oids ...asn1.ObjectIdentifier) pkix.Extension {
		return pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Value: mustMarshal(t, oids)}
	}
	keyUsage := func(bit int) pkix.Extension {
		bs := asn1.BitString{Bytes: []byte{0x80 >> bit}, BitLength: bit + 1}
		return pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 15}, Critical: true, Value: mustMarshal(t, bs)}
	}
	empty := []byte{0x30, 0}
	exts := func(e ...pkix.Extension) *pb.IstioCertificateRequest {
		return csrWith(t, catest.CSROptions{Extensions: e})
	}
	// A SAN extension with the SPIFFE ID and one more GeneralName.
	sanPlus := func(extra asn1.RawValue) *pb.IstioCertificateRequest {
		uri := asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 6, Bytes: []byte(sleepID)}
		v := mustMarshal(t, []asn1.RawValue{uri, extra})
		b, _ := catest.CSR(t, catest.CSROptions{Extensions: []pkix.Extension{
			{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Critical: true, Value: v}}})
		return &pb.IstioCertificateRequest{Csr: string(b)}
	}
	masters := mustMarshal(t, pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}}.ToRDNSequence())
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	testdata := func(name string) *pb.IstioCertificateRequest {
		b, err := os.ReadFile(filepath.Join(catest.RepoRoot(t), "csr", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return &pb.IstioCertificateRequest{Csr: string(b)}
	}
	good, _ := catest.WorkloadCSR(t, sleepID)
	blk, _ := pem.Decode(good)
	cert := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: blk.Bytes}))
	p, inv := codes.PermissionDenied, codes.InvalidArgument
	return []adversarial{
		{"a CSR with a DNS SAN", tok, nil, csrWith(t, catest.CSROptions{DNS: []string{"kubernetes.default.svc"}}), p,
			"forbidden_san"},
		{"a CSR with a wildcard DNS SAN", tok, nil, csrWith(t, catest.CSROptions{DNS: []string{"*.svc"}}), p,
			"forbidden_san"},
		{"a CSR with an IP SAN", tok, nil, csrWith(t, catest.CSROptions{IPs: []string{"10.0.0.1"}}), p,
			"forbidden_san"},
		{"a CSR with an email SAN", tok, nil, csrWith(t, catest.CSROptions{Emails: []string{"root@example.com"}}), p,
			"forbidden_san"},
		{"a CSR asking to be a CA", tok, nil, csrWith(t, catest.CSROptions{IsCA: true}), p, "ca_requested"},
		{"a CSR asking for keyCertSign", tok, nil, exts(keyUsage(5)), p, "unsupported_request"},
		{"a CSR asking for cRLSign", tok, nil, exts(keyUsage(6)), p, "unsupported_request"},
		{"a CSR asking for codeSigning", tok, nil, exts(ekus(asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 3})), p,
			"unsupported_request"},
		{"a CSR asking for OCSPSigning", tok, nil, exts(ekus(asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 9})), p,
			"unsupported_request"},
		{"a CSR asking for any extended key usage", tok, nil, exts(ekus(asn1.ObjectIdentifier{2, 5, 29, 37, 0})), p,
			"unsupported_request"},
		{"a CSR asking for name constraints", tok, nil, exts(pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 30},
			Critical: true, Value: empty}), p, "unsupported_request"},
		{"a CSR asking for certificate policies", tok, nil, exts(pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 32},
			Value: empty}), p, "unsupported_request"},
		{"a CSR asking for OCSP no-check", tok, nil, exts(pkix.Extension{
			Id: asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}, Value: []byte{5, 0}}), p, "unsupported_request"},
		{"a CSR asking for an authority information access", tok, nil, exts(pkix.Extension{
			Id: asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 1}, Value: empty}), p, "unsupported_request"},
		{"a CSR with an unknown non-critical extension", tok, nil, exts(pkix.Extension{
			Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, Value: []byte{5, 0}}), p, "unsupported_request"},
		{"a CSR with a directoryName SAN naming system:masters", tok, nil, sanPlus(asn1.RawValue{
			Class: asn1.ClassContextSpecific, Tag: 4, IsCompound: true, Bytes: masters}), p, "unsupported_request"},
		{"a CSR with a registeredID SAN", tok, nil, sanPlus(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 8,
			Bytes: mustMarshal(t, asn1.ObjectIdentifier{1, 2, 3, 4})[2:]}), p, "unsupported_request"},
		{"the committed Vault sign-verbatim attack CSR", tok, nil, testdata("vault-verbatim-attack.pem"), p,
			"unsupported_request"},
		{"a CSR with a P-224 key", tok, nil, csrWith(t, catest.CSROptions{Key: p224}), inv, "key_policy"},
		{"a CSR with a 1024-bit RSA key", tok, nil, csrWith(t, catest.CSROptions{Key: catest.RSAKey(t, 1024)}), inv,
			"key_policy"},
		{"a CSR with a bad self-signature", tok, nil, testdata("bad-signature.pem"), inv, "invalid_csr"},
		{"a truncated CSR", tok, nil, testdata("truncated.pem"), inv, "invalid_csr"},
		{"a certificate sent as the CSR", tok, nil, &pb.IstioCertificateRequest{Csr: cert}, inv, "invalid_csr"},
		{"two CSRs in one request", tok, nil, &pb.IstioCertificateRequest{Csr: string(good) + string(good)}, inv,
			"invalid_csr"},
		{"an empty CSR", tok, nil, &pb.IstioCertificateRequest{}, inv, "invalid_csr"},
		{"a CSR of base64 garbage", tok, nil, &pb.IstioCertificateRequest{
			Csr: "-----BEGIN CERTIFICATE REQUEST-----\nZZZZ\n-----END CERTIFICATE REQUEST-----\n"}, inv, "invalid_csr"},
	}
}

func requestCases(t *testing.T, m *catest.Meshca) []adversarial {
	tok := mint(t, m.Tokens, devtoken.Claims{})
	good := goodRequest(t)
	md := func(kv map[string]any) *pb.IstioCertificateRequest {
		s, err := structpb.NewStruct(kv)
		if err != nil {
			t.Fatal(err)
		}
		return &pb.IstioCertificateRequest{Csr: good.Csr, Metadata: s}
	}
	inv := codes.InvalidArgument
	return []adversarial{
		{"a negative validity", tok, nil, &pb.IstioCertificateRequest{Csr: good.Csr, ValidityDuration: -1}, inv,
			"invalid_request"},
		{"an empty ImpersonatedIdentity", tok, nil, md(map[string]any{"ImpersonatedIdentity": ""}), inv,
			"invalid_request"},
		{"a numeric ImpersonatedIdentity", tok, nil, md(map[string]any{"ImpersonatedIdentity": 1.0}), inv,
			"invalid_request"},
		{"an ImpersonatedIdentity while impersonation is off", tok, nil, md(map[string]any{
			"ImpersonatedIdentity": "spiffe://cluster.local/ns/kube-system/sa/admin"}), codes.PermissionDenied,
			"impersonation_denied"},
		{"an ImpersonatedIdentity of 4 KiB", tok, nil, md(map[string]any{
			"ImpersonatedIdentity": "spiffe://cluster.local/" + strings.Repeat("Z", 4096)}), inv, "invalid_request"},
		{"a CertSigner no rule routes", tok, nil, md(map[string]any{"CertSigner": "root"}), inv, "unknown_signer"},
		{"unknown metadata", tok, nil, md(map[string]any{"IsCA": "true"}), inv, "invalid_request"},
		{"unknown metadata with a 4 KiB key", tok, nil, md(map[string]any{strings.Repeat("Z", 4096): "x"}), inv,
			"invalid_request"},
		{"a CSR over the CSR size limit", tok, nil, &pb.IstioCertificateRequest{Csr: good.Csr +
			strings.Repeat(" ", 40<<10)}, inv, "invalid_csr"},
		{"a message over gRPC's size limit", tok, nil, &pb.IstioCertificateRequest{Csr: strings.Repeat("A", 100<<10)},
			codes.ResourceExhausted, ""},
	}
}
