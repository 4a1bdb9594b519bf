package server_test

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	pb "istio.io/api/security/v1alpha1"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/ca/policy"
	"github.com/meshca/meshca/csr"
)

// policyRules is the policy of the end-to-end table: a freeze, a signer routed to its own CA, a namespace
// routed to it by name alone, an ECDSA-only namespace with DNS names under name constraints, and a rate.
func policyRules() policy.Config {
	return policy.Config{Rules: []policy.Rule{
		{Name: "freeze", Match: policy.Match{Namespaces: []string{"payments"}},
			Deny: &policy.Deny{Reason: "incident 42"}},
		{Name: "finance-signer", Match: policy.Match{CertSigners: []string{"finance"}},
			Backends: []string{"finance"}},
		{Name: "finance-ns", Match: policy.Match{Namespaces: []string{"finance-*"}}, Backends: []string{"finance"},
			Lifetime: &policy.Lifetime{Max: 2 * time.Hour}},
		{Name: "web", Match: policy.Match{Namespaces: []string{"web"}}, KeyTypes: []string{"ECDSA-P256"},
			DNSNameTemplates: []string{"{sa}.{ns}.svc", "admin.{ns}.svc"},
			NameConstraints:  &policy.NameConstraints{Deny: &policy.Names{DNS: []string{"admin.web.svc"}}}},
		{Name: "slow", Match: policy.Match{Namespaces: []string{"slow"}}, Rate: &policy.Rate{PerSecond: 0.001}},
	}}
}

type auditLine struct {
	Msg, Rule, Reason, Backend, Identity string
	CertSigner                           string `json:"cert_signer"`
}

// TestPolicyOverGRPC: each policy × request case, sent through the real gRPC server, gets the expected
// code, reason, deciding rule (audit record and meshca_policy_decisions_total) and signing CA; and
// ca.Explain, the code behind `meshca policy explain`, decides every case the same way.
func TestPolicyOverGRPC(t *testing.T) {
	meshDir, meshCA := catest.FileCA(t)
	finDir, finCA := catest.FileCA(t)
	var logs bytes.Buffer
	m := catest.StartMeshca(t, catest.MeshcaOptions{
		Backends: []ca.NamedBackend{{Name: "mesh", Backend: catest.FileBackend(t, meshDir, nil)},
			{Name: "finance", Backend: catest.FileBackend(t, finDir, nil)}},
		Policy: &ca.Policy{TrustDomain: catest.TrustDomain, DNSNameTemplates: []string{"{sa}.{ns}.svc"}},
		Rules:  policyRules(), Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	conn := m.Dial(t)
	roots := map[string]*x509.Certificate{"mesh": meshCA.Root, "finance": finCA.Root}
	for _, tt := range []struct {
		name       string
		ns, sa     string
		signer     string
		rsa        bool
		dns        []string
		ttl        int64
		want       codes.Code
		reason     string
		rule       string
		backend    string
		maxNotLeft time.Duration
	}{
		{"a namespace no rule selects is signed by the mesh CA", "default", "sleep", "", false, nil, 0,
			codes.OK, "ok", "default", "mesh", 24 * time.Hour},
		{"a frozen namespace is denied", "payments", "api", "", false, nil, 0, codes.PermissionDenied,
			"policy_denied", "freeze", "", 0},
		{"a frozen namespace is denied even with a routed signer", "payments", "api", "finance", false, nil, 0,
			codes.PermissionDenied, "policy_denied", "freeze", "", 0},
		{"CertSigner finance is signed by the finance CA", "default", "ledger", "finance", false, nil, 0, codes.OK,
			"ok", "finance-signer", "finance", 24 * time.Hour},
		{"an unknown CertSigner is refused", "default", "sleep", "hr", false, nil, 0, codes.InvalidArgument,
			"unknown_signer", "default", "", 0},
		{"a finance-* namespace is routed to the finance CA by name, lifetime clamped", "finance-eu", "a", "",
			false, nil, 86400, codes.OK, "ok", "finance-ns", "finance", 2 * time.Hour},
		{"an RSA key where the rule issues ECDSA only", "web", "frontend", "", true, nil, 0, codes.InvalidArgument,
			"key_policy", "web", "", 0},
		{"a DNS name the rule's template gives", "web", "frontend", "", false, []string{"frontend.web.svc"}, 0,
			codes.OK, "ok", "web", "mesh", 24 * time.Hour},
		{"a DNS name the name constraints deny though a template gives it", "web", "frontend", "", false,
			[]string{"admin.web.svc"}, 0, codes.PermissionDenied, "forbidden_san", "web", "", 0},
		{"a DNS name of the global templates outside its rule", "default", "sleep", "", false,
			[]string{"sleep.default.svc"}, 0, codes.OK, "ok", "default", "mesh", 24 * time.Hour},
		{"a rule's rate: the first request passes", "slow", "a", "", false, nil, 0, codes.OK, "ok", "slow", "mesh",
			24 * time.Hour},
		{"a rule's rate: the second is limited", "slow", "a", "", false, nil, 0, codes.ResourceExhausted,
			"rate_limited", "slow", "", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id := "spiffe://cluster.local/ns/" + tt.ns + "/sa/" + tt.sa
			o := catest.CSROptions{URIs: []string{id}, DNS: tt.dns}
			if tt.rsa {
				o.Key = catest.RSAKey(t, 2048)
			}
			pemCSR, key := catest.CSR(t, o)
			md, err := structpb.NewStruct(map[string]any{"CertSigner": tt.signer})
			if err != nil {
				t.Fatal(err)
			}
			logs.Reset()
			before := metricValue(t, m, "meshca_policy_decisions_total", "rule", tt.rule)
			resp, err := call(t, conn, m.Token(t, tt.ns, tt.sa),
				&pb.IstioCertificateRequest{Csr: string(pemCSR), ValidityDuration: tt.ttl, Metadata: md})
			if got := status.Code(err); got != tt.want {
				t.Fatalf("code %v (%v), want %v", got, err, tt.want)
			}
			audit := lastAudit(t, &logs)
			if audit.Rule != tt.rule || audit.Reason != tt.reason || audit.CertSigner != tt.signer {
				t.Errorf("audit rule %q reason %q signer %q, want %q %q %q", audit.Rule, audit.Reason,
					audit.CertSigner, tt.rule, tt.reason, tt.signer)
			}
			if got := metricValue(t, m, "meshca_policy_decisions_total", "rule", tt.rule) - before; got != 1 {
				t.Errorf("meshca_policy_decisions_total{rule=%q} rose by %v, want 1", tt.rule, got)
			}
			if tt.rule != "slow" { // the rate is the issuer's state, not the policy's: explain cannot see it
				parsed, perr := csr.Parse(pemCSR)
				if perr != nil {
					t.Fatal(perr)
				}
				d, xerr := ca.Explain(ca.Policy{TrustDomain: catest.TrustDomain,
					DNSNameTemplates: []string{"{sa}.{ns}.svc"}}, policyRules(), []string{"mesh", "finance"},
					ca.Ask{Identity: csr.Identity{TrustDomain: catest.TrustDomain, Namespace: tt.ns,
						ServiceAccount: tt.sa}, CSR: parsed, CertSigner: tt.signer,
						TTL: time.Duration(tt.ttl) * time.Second})
				if xerr != nil {
					t.Fatal(xerr)
				}
				if d.Rule != tt.rule || ca.Classify(d.Err).Code != tt.want {
					t.Errorf("explain: rule %q code %v, server: rule %q code %v", d.Rule, ca.Classify(d.Err).Code,
						tt.rule, tt.want)
				}
			}
			if tt.want != codes.OK {
				return
			}
			if audit.Backend != tt.backend {
				t.Errorf("signed by backend %q, want %q", audit.Backend, tt.backend)
			}
			pems := resp.GetCertChain()
			chain := parseChain(t, pems[:len(pems)-1])
			if bundle := pemCerts(t, pems[len(pems)-1]); len(bundle) != 2 {
				t.Errorf("the trust bundle holds %d roots, want both CAs' roots", len(bundle))
			}
			leaf := chain[0]
			pool := x509.NewCertPool()
			pool.AddCert(roots[tt.backend])
			inters := x509.NewCertPool()
			for _, c := range chain[1:] {
				inters.AddCert(c)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inters,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				t.Errorf("the leaf does not verify to the %s root: %v", tt.backend, err)
			}
			if !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(leaf.PublicKey) {
				t.Error("the leaf is not for the CSR's key")
			}
			if left := time.Until(leaf.NotAfter); left > tt.maxNotLeft || left < tt.maxNotLeft-time.Minute {
				t.Errorf("leaf lives %s, want %s", left.Round(time.Second), tt.maxNotLeft)
			}
		})
	}
}

// lastAudit returns the last audit record in a JSON log.
func lastAudit(t *testing.T, logs *bytes.Buffer) auditLine {
	t.Helper()
	var last auditLine
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var a auditLine
		if json.Unmarshal([]byte(line), &a) == nil && strings.HasPrefix(a.Msg, "certificate ") {
			last = a
		}
	}
	if last.Msg == "" {
		t.Fatalf("no audit record in:\n%s", logs.String())
	}
	return last
}
