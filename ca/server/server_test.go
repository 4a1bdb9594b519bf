package server_test

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	pb "istio.io/api/security/v1alpha1"

	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/ca/server"
	"github.com/meshca/meshca/internal/devtoken"
)

const sleepID = "spiffe://cluster.local/ns/default/sa/sleep"

func call(t *testing.T, conn *grpc.ClientConn, token string,
	req *pb.IstioCertificateRequest) (*pb.IstioCertificateResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx,
			"authorization", "Bearer "+token, "clusterid", authn.DefaultClusterID)
	}
	return pb.NewIstioCertificateServiceClient(conn).CreateCertificate(ctx, req)
}

func mint(t *testing.T, d *devtoken.Minter, c devtoken.Claims) string {
	t.Helper()
	if c.Namespace == "" {
		c.Namespace, c.ServiceAccount = "default", "sleep"
	}
	tok, err := d.Mint(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// unsignedToken is a token with "alg":"none" and the right claims.
func unsignedToken(issuer string) string {
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	c, _ := json.Marshal(map[string]any{"iss": issuer, "sub": "system:serviceaccount:default:sleep",
		"aud": []string{authn.DefaultAudience},
		"exp": time.Now().Add(time.Hour).Unix()})
	return h + "." + base64.RawURLEncoding.EncodeToString(c) + "."
}

func hmacToken(t *testing.T, issuer string) string {
	t.Helper()
	s, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.HS256, Key: []byte("0123456789abcdef0123456789abcdef")},
		nil,
	)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(jwt.Claims{Issuer: issuer, Subject: "system:serviceaccount:default:sleep",
		Audience: jwt.Audience{authn.DefaultAudience},
		Expiry:   jwt.NewNumericDate(time.Now().Add(time.Hour))}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestRefusals(t *testing.T) {
	m := catest.StartMeshca(t, catest.MeshcaOptions{})
	conn := m.Dial(t)
	good, _ := catest.WorkloadCSR(t, sleepID)
	goodTok := mint(t, m.Tokens, devtoken.Claims{})
	otherIssuer, err := devtoken.Generate("https://other.example/issuer")
	if err != nil {
		t.Fatal(err)
	}
	forger, err := devtoken.Generate(m.Tokens.Issuer) // same issuer name, different key
	if err != nil {
		t.Fatal(err)
	}
	csr := func(o catest.CSROptions) string { b, _ := catest.CSR(t, o); return string(b) }
	badSig := func() string {
		b, _ := catest.WorkloadCSR(t, sleepID)
		block, _ := pem.Decode(b)
		block.Bytes[len(block.Bytes)-3] ^= 0xff
		return string(pem.EncodeToMemory(block))
	}()
	critExt := pkix.Extension{Id: asn1.ObjectIdentifier{1, 2, 3, 4, 5}, Critical: true, Value: []byte{5, 0}}
	impersonate, _ := structpb.NewStruct(map[string]any{
		"ImpersonatedIdentity": "spiffe://cluster.local/ns/default/sa/admin"})
	md := func(kv map[string]any) *pb.IstioCertificateRequest {
		s, err := structpb.NewStruct(kv)
		if err != nil {
			t.Fatal(err)
		}
		return &pb.IstioCertificateRequest{Csr: string(good), Metadata: s}
	}

	tests := []struct {
		name     string
		token    string
		req      *pb.IstioCertificateRequest
		want     codes.Code
		reason   string
		msgMatch string
	}{
		{"a request without any credential is unauthenticated", "", &pb.IstioCertificateRequest{Csr: string(good)},
			codes.Unauthenticated, "unauthenticated", "no credential"},
		{"a CSR for another service account is denied", goodTok,
			&pb.IstioCertificateRequest{Csr: csr(catest.CSROptions{URIs: []string{
				"spiffe://cluster.local/ns/default/sa/admin"}})},
			codes.PermissionDenied, "identity_mismatch", "caller is"},
		{"a CSR for another namespace is denied", goodTok,
			&pb.IstioCertificateRequest{Csr: csr(catest.CSROptions{URIs: []string{
				"spiffe://cluster.local/ns/kube-system/sa/sleep"}})},
			codes.PermissionDenied, "identity_mismatch", ""},
		{"a CSR for a foreign trust domain is denied", goodTok,
			&pb.IstioCertificateRequest{Csr: csr(catest.CSROptions{URIs: []string{
				"spiffe://evil.example/ns/default/sa/sleep"}})},
			codes.PermissionDenied, "identity_mismatch", "trust domain"},
		{"a CSR with a path-injected SPIFFE ID is denied", goodTok,
			&pb.IstioCertificateRequest{Csr: csr(catest.CSROptions{URIs: []string{
				"spiffe://cluster.local/ns/default/sa/sleep/extra"}})},
			codes.PermissionDenied, "identity_mismatch", ""},
		{"a CSR with extra URI SANs is denied", goodTok,
			&pb.IstioCertificateRequest{Csr: csr(catest.CSROptions{URIs: []string{
				sleepID, "spiffe://cluster.local/ns/default/sa/admin"}})},
			codes.PermissionDenied, "forbidden_san", "URI SANs"},
		{"a CSR with a DNS SAN is denied", goodTok,
			&pb.IstioCertificateRequest{Csr: csr(catest.CSROptions{URIs: []string{sleepID},
				DNS: []string{"kubernetes.default.svc"}})},
			codes.PermissionDenied, "forbidden_san", "DNS SAN"},
		{"a CSR with an IP SAN is denied", goodTok,
			&pb.IstioCertificateRequest{
				Csr: csr(catest.CSROptions{URIs: []string{sleepID}, IPs: []string{"10.0.0.1"}}),
			},
			codes.PermissionDenied, "forbidden_san", ""},
		{"a CSR with an email SAN is denied", goodTok,
			&pb.IstioCertificateRequest{Csr: csr(catest.CSROptions{URIs: []string{sleepID},
				Emails: []string{"root@example.com"}})},
			codes.PermissionDenied, "forbidden_san", ""},
		{"a CSR asking for a CA certificate is denied", goodTok,
			&pb.IstioCertificateRequest{Csr: csr(catest.CSROptions{URIs: []string{sleepID}, IsCA: true})},
			codes.PermissionDenied, "ca_requested", "CA certificate"},
		{"a CSR with an unknown critical extension is refused as unsupported", goodTok,
			&pb.IstioCertificateRequest{Csr: csr(catest.CSROptions{URIs: []string{sleepID},
				Extensions: []pkix.Extension{critExt}})},
			codes.PermissionDenied, "unsupported_request", "critical extension"},
		{"an expired token is unauthenticated",
			mint(t, m.Tokens, devtoken.Claims{IssuedAt: time.Now().Add(-2 * time.Hour), TTL: time.Hour}),
			&pb.IstioCertificateRequest{Csr: string(good)}, codes.Unauthenticated, "unauthenticated", "expired"},
		{"a not-yet-valid token is unauthenticated",
			mint(t, m.Tokens, devtoken.Claims{NotBefore: time.Now().Add(10 * time.Minute)}),
			&pb.IstioCertificateRequest{Csr: string(good)}, codes.Unauthenticated, "unauthenticated", "not valid yet"},
		{
			"a token for another audience is unauthenticated",
			mint(t, m.Tokens, devtoken.Claims{Audiences: []string{"vault"}}),
			&pb.IstioCertificateRequest{Csr: string(good)},
			codes.Unauthenticated,
			"unauthenticated",
			"audience",
		},
		{"a token from an untrusted issuer is unauthenticated", mint(t, otherIssuer, devtoken.Claims{}),
			&pb.IstioCertificateRequest{Csr: string(good)}, codes.Unauthenticated, "unauthenticated", "not trusted"},
		{"a token signed with the wrong key is unauthenticated", mint(t, forger, devtoken.Claims{}),
			&pb.IstioCertificateRequest{Csr: string(good)}, codes.Unauthenticated, "unauthenticated", "signature"},
		{"an unsigned token is unauthenticated", unsignedToken(m.Tokens.Issuer),
			&pb.IstioCertificateRequest{Csr: string(good)}, codes.Unauthenticated, "unauthenticated", ""},
		{"an HMAC-signed token is unauthenticated", hmacToken(t, m.Tokens.Issuer),
			&pb.IstioCertificateRequest{Csr: string(good)}, codes.Unauthenticated, "unauthenticated", ""},
		{"a garbage token is unauthenticated", "not-a-jwt", &pb.IstioCertificateRequest{Csr: string(good)},
			codes.Unauthenticated, "unauthenticated", ""},
		{"a garbage CSR is invalid", goodTok,
			&pb.IstioCertificateRequest{
				Csr: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
			},
			codes.InvalidArgument, "invalid_csr", ""},
		{"a CSR that is not PEM is invalid", goodTok, &pb.IstioCertificateRequest{Csr: "hello"},
			codes.InvalidArgument, "invalid_csr", "PEM"},
		{"a CSR with a bad self-signature is invalid", goodTok, &pb.IstioCertificateRequest{Csr: badSig},
			codes.InvalidArgument, "invalid_csr", "self-signature"},
		{"a CSR with a 1024-bit RSA key is refused", goodTok,
			&pb.IstioCertificateRequest{
				Csr: csr(catest.CSROptions{URIs: []string{sleepID}, Key: catest.RSAKey(t, 1024)}),
			},
			codes.InvalidArgument, "key_policy", "2048"},
		{"a CSR bigger than the CSR limit is invalid", goodTok,
			&pb.IstioCertificateRequest{Csr: string(good) + strings.Repeat(" ", 40<<10)},
			codes.InvalidArgument, "invalid_csr", "limit"},
		{"a request bigger than the message limit is refused by gRPC", goodTok,
			&pb.IstioCertificateRequest{Csr: strings.Repeat("A", 100<<10)}, codes.ResourceExhausted, "", ""},
		{
			"a negative validity is invalid",
			goodTok,
			&pb.IstioCertificateRequest{Csr: string(good), ValidityDuration: -5},
			codes.InvalidArgument,
			"invalid_request",
			"negative",
		},
		{"an empty ImpersonatedIdentity is invalid", goodTok, md(map[string]any{"ImpersonatedIdentity": ""}),
			codes.InvalidArgument, "invalid_request", "ImpersonatedIdentity"},
		{"a non-string ImpersonatedIdentity is invalid", goodTok, md(map[string]any{"ImpersonatedIdentity": 7.0}),
			codes.InvalidArgument, "invalid_request", "ImpersonatedIdentity"},
		{"a CertSigner no rule routes is refused, not ignored", goodTok, md(map[string]any{"CertSigner": "finance"}),
			codes.InvalidArgument, "unknown_signer", "CertSigner"},
		{"an empty CertSigner (as Istio's client always sends) asks for nothing", goodTok,
			md(map[string]any{"CertSigner": "", "ImpersonatedIdentity": "spiffe://cluster.local/ns/default/sa/admin"}),
			codes.PermissionDenied, "impersonation_denied", "not enabled"},
		{"unknown metadata is refused, not ignored", goodTok, md(map[string]any{"GrantAdmin": "yes"}),
			codes.InvalidArgument, "invalid_request", "metadata"},
		{"impersonation is denied when not enabled", goodTok,
			&pb.IstioCertificateRequest{Csr: string(good), Metadata: impersonate},
			codes.PermissionDenied, "impersonation_denied", "not enabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := metricValue(t, m, "meshca_csr_requests_total", "reason", tt.reason)
			resp, err := call(t, conn, tt.token, tt.req)
			if got := status.Code(err); got != tt.want {
				t.Fatalf("code = %v (%v), want %v", got, err, tt.want)
			}
			if resp != nil {
				t.Fatalf("a refused request returned a response with %d certificates", len(resp.GetCertChain()))
			}
			if tt.msgMatch != "" && !strings.Contains(status.Convert(err).Message(), tt.msgMatch) {
				t.Errorf("message %q does not mention %q", status.Convert(err).Message(), tt.msgMatch)
			}
			if tt.reason != "" {
				if got := metricValue(t, m, "meshca_csr_requests_total", "reason", tt.reason) - before; got != 1 {
					t.Errorf("meshca_csr_requests_total{reason=%q} grew by %v, want 1", tt.reason, got)
				}
			}
		})
	}
	if n := metricValue(t, m, "citadel_server_success_cert_issuance_count", "", ""); n != 0 {
		t.Fatalf("citadel_server_success_cert_issuance_count = %v after refusals only, want 0", n)
	}
}

func TestIssuesCallersIdentity(t *testing.T) {
	m := catest.StartMeshca(t, catest.MeshcaOptions{})
	conn := m.Dial(t)
	tok := mint(t, m.Tokens, devtoken.Claims{})
	tests := []struct {
		name     string
		opts     catest.CSROptions
		validity int64
		wantTTL  time.Duration
		wantKU   x509.KeyUsage
	}{
		{"ECDSA P-256 with the default lifetime", catest.CSROptions{URIs: []string{sleepID}}, 0, 24 * time.Hour,
			x509.KeyUsageDigitalSignature},
		{"ECDSA P-384 asking for 2h", catest.CSROptions{URIs: []string{sleepID}, Key: p384(t)}, 7200, 2 * time.Hour,
			x509.KeyUsageDigitalSignature},
		{"RSA-2048 like istio-agent's default",
			catest.CSROptions{URIs: []string{sleepID}, Key: catest.RSAKey(t, 2048),
				Subject: pkix.Name{Organization: []string{"cluster.local"}}},
			86400, 24 * time.Hour, x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment},
		{"Ed25519", catest.CSROptions{URIs: []string{sleepID}, Key: catest.Ed25519Key(t)}, 0, 24 * time.Hour,
			x509.KeyUsageDigitalSignature},
		{"a lifetime beyond the maximum is clamped to it", catest.CSROptions{URIs: []string{sleepID}}, 30 * 86400,
			24 * time.Hour, x509.KeyUsageDigitalSignature},
		{"a lifetime below the minimum is raised to it", catest.CSROptions{URIs: []string{sleepID}}, 30, time.Hour,
			x509.KeyUsageDigitalSignature},
		{"a CSR without SANs gets the caller's identity", catest.CSROptions{}, 0, 24 * time.Hour,
			x509.KeyUsageDigitalSignature},
		{"a CSR subject is ignored",
			catest.CSROptions{URIs: []string{sleepID},
				Subject: pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}}},
			0, 24 * time.Hour, x509.KeyUsageDigitalSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			csrPEM, key := catest.CSR(t, tt.opts)
			start := time.Now()
			resp, err := call(
				t,
				conn,
				tok,
				&pb.IstioCertificateRequest{Csr: string(csrPEM), ValidityDuration: tt.validity},
			)
			if err != nil {
				t.Fatal(err)
			}
			chain := parseChain(t, resp.GetCertChain())
			leaf := chain[0]
			if len(chain) != 3 {
				t.Fatalf("chain has %d certificates, want leaf, intermediate, root", len(chain))
			}
			if !leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
				t.Fatal("leaf certifies another key")
			}
			// go-spiffe's X.509-SVID verifier with the mesh root as the bundle.
			td := spiffeid.RequireTrustDomainFromString("cluster.local")
			id, _, err := x509svid.Verify(
				chain[:len(chain)-1],
				x509bundle.FromX509Authorities(td, chain[len(chain)-1:]),
			)
			if err != nil {
				t.Fatalf("x509svid.Verify: %v", err)
			}
			otherSANs := len(leaf.DNSNames) + len(leaf.IPAddresses) + len(leaf.EmailAddresses)
			if id.String() != sleepID || len(leaf.URIs) != 1 || otherSANs != 0 {
				t.Fatalf("leaf identity = %v (URIs %v DNS %v), want exactly %s", id, leaf.URIs, leaf.DNSNames, sleepID)
			}
			if got := leaf.NotAfter.Sub(start); got < tt.wantTTL-time.Minute || got > tt.wantTTL+time.Minute {
				t.Errorf("lifetime %s, want about %s", got, tt.wantTTL)
			}
			if leaf.KeyUsage != tt.wantKU || len(leaf.ExtKeyUsage) != 2 || leaf.IsCA || !leaf.BasicConstraintsValid {
				t.Errorf(
					"KU %v EKU %v CA %v: want %v, serverAuth+clientAuth, not a CA",
					leaf.KeyUsage,
					leaf.ExtKeyUsage,
					leaf.IsCA,
					tt.wantKU,
				)
			}
			if len(leaf.SubjectKeyId) == 0 || len(leaf.AuthorityKeyId) == 0 || leaf.Subject.CommonName != "" ||
				len(leaf.Subject.Organization) != 0 {
				t.Errorf(
					"SKI %x AKI %x subject %q: want both key IDs and an empty subject",
					leaf.SubjectKeyId,
					leaf.AuthorityKeyId,
					leaf.Subject,
				)
			}
			if leaf.SerialNumber.BitLen() != 128 || leaf.Version != 3 {
				t.Errorf(
					"serial of %d bits, version %d: want 128 random bits, v3",
					leaf.SerialNumber.BitLen(),
					leaf.Version,
				)
			}
		})
	}
}

// TestRenewalWithClientCertificate: a workload presenting its certificate may renew exactly its identity.
func TestRenewalWithClientCertificate(t *testing.T) {
	m := catest.StartMeshca(t, catest.MeshcaOptions{})
	csrPEM, key := catest.WorkloadCSR(t, sleepID)
	resp, err := call(
		t,
		m.Dial(t),
		mint(t, m.Tokens, devtoken.Claims{}),
		&pb.IstioCertificateRequest{Csr: string(csrPEM)},
	)
	if err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{PrivateKey: key}
	for _, p := range resp.GetCertChain()[:len(resp.GetCertChain())-1] {
		b, _ := pem.Decode([]byte(p))
		cert.Certificate = append(cert.Certificate, b.Bytes)
	}
	conn := m.Dial(t, cert)
	next, _ := catest.WorkloadCSR(t, sleepID)
	got, err := call(t, conn, "", &pb.IstioCertificateRequest{Csr: string(next)})
	if err != nil {
		t.Fatalf("renewal with the client certificate: %v", err)
	}
	if leaf := parseChain(t, got.GetCertChain())[0]; leaf.URIs[0].String() != sleepID {
		t.Fatalf("renewed identity %v", leaf.URIs)
	}
	other, _ := catest.WorkloadCSR(t, "spiffe://cluster.local/ns/default/sa/admin")
	if _, err := call(t, conn, "",
		&pb.IstioCertificateRequest{Csr: string(other)}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("renewal for another identity: %v, want PermissionDenied", err)
	}

	// A certificate from a CA this meshca does not trust proves nothing.
	foreign := catest.StartMeshca(t, catest.MeshcaOptions{})
	fcsr, fkey := catest.WorkloadCSR(t, sleepID)
	fresp, err := call(t, foreign.Dial(t), foreign.Token(t, "default", "sleep"),
		&pb.IstioCertificateRequest{Csr: string(fcsr)})
	if err != nil {
		t.Fatal(err)
	}
	fcert := tls.Certificate{PrivateKey: fkey}
	for _, p := range fresp.GetCertChain()[:2] {
		b, _ := pem.Decode([]byte(p))
		fcert.Certificate = append(fcert.Certificate, b.Bytes)
	}
	if _, err := call(t, m.Dial(t, fcert), "",
		&pb.IstioCertificateRequest{Csr: string(next)}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("renewal with a foreign certificate: %v, want Unauthenticated", err)
	}
}

func TestHTTPAndHealth(t *testing.T) {
	page := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("a further page")) })
	m := catest.StartMeshca(t, catest.MeshcaOptions{
		Server: server.Config{Pages: map[string]http.Handler{"/more": page}}})
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ok", "/roots.pem": "BEGIN CERTIFICATE",
		"/metrics": "citadel_server_root_cert_expiry_timestamp", "/more": "a further page"} {
		resp, err := http.Get("http://" + m.HTTPAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d %.200q, want 200 with %q", path, resp.StatusCode, body, want)
		}
	}
	// The gRPC health service reports SERVING once the backend is ready.
	hc := healthpb.NewHealthClient(m.Dial(t))
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := hc.Check(context.Background(),
			&healthpb.HealthCheckRequest{Service: pb.IstioCertificateService_ServiceDesc.ServiceName})
		if err == nil && r.Status == healthpb.HealthCheckResponse_SERVING {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("health: %v %v", r, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func parseChain(t *testing.T, pems []string) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for n, p := range pems {
		block, rest := pem.Decode([]byte(p))
		if block == nil || len(strings.TrimSpace(string(rest))) != 0 {
			t.Fatalf("cert_chain[%d] must be exactly one PEM certificate", n)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	if len(out) < 2 {
		t.Fatalf("cert_chain has %d elements, istio-agent needs at least 2", len(out))
	}
	return out
}

// TestServingCertificateRotates: meshca renews its own serving certificate at two thirds of its life, through
// its backend, and every one verifies to the mesh root for the address agents dial.
func TestServingCertificateRotates(t *testing.T) {
	m := catest.StartMeshca(t, catest.MeshcaOptions{ServingTTL: 3 * time.Second})
	serials := map[string]bool{}
	deadline := time.Now().Add(10 * time.Second)
	for len(serials) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("saw %d serving certificates in 10s with a 3s lifetime, want 3", len(serials))
		}
		conn, err := tls.Dial("tcp", m.GRPCAddr,
			&tls.Config{RootCAs: m.Roots, ServerName: "127.0.0.1", NextProtos: []string{"h2"}})
		if err != nil {
			t.Fatalf("TLS to meshca: %v", err)
		}
		leaf := conn.ConnectionState().PeerCertificates[0]
		conn.Close()
		if time.Until(leaf.NotAfter) <= 0 {
			t.Fatalf("served an expired certificate (not after %s)", leaf.NotAfter)
		}
		if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://cluster.local/ns/istio-system/sa/meshca" {
			t.Fatalf("serving certificate identity %v", leaf.URIs)
		}
		serials[leaf.SerialNumber.String()] = true
		time.Sleep(200 * time.Millisecond)
	}
}
