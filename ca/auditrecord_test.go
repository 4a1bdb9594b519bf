package ca_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/internal/devtoken"
)

// TestAuditRecords: each request leaves one audit line with what it did; optional attributes (cluster ID, pod)
// appear exactly when the request had them, and a refusal carries its error instead of a certificate. The
// cluster is the caller's once a credential proved it, and until then the clusterid header (bounded).
func TestAuditRecords(t *testing.T) {
	dir, _ := catest.FileCA(t)
	dev, err := devtoken.Generate("")
	if err != nil {
		t.Fatal(err)
	}
	j, err := authn.NewJWT([]authn.TokenIssuer{{Issuer: dev.Issuer, Keys: dev.Keys()}}, authn.JWTOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	i, err := ca.New(ca.Config{
		Backends:      []ca.NamedBackend{{Name: "file", Backend: catest.FileBackend(t, dir, nil)}},
		Authenticator: j, Policy: ca.Policy{TrustDomain: "cluster.local"},
		Logger: catest.DiscardLogger(), Audit: slog.New(slog.NewJSONHandler(&buf, nil)),
		Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	mint := func(c devtoken.Claims) string {
		tok, err := dev.Mint(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	own, _ := catest.WorkloadCSR(t, "spiffe://cluster.local/ns/default/sa/sleep")
	foreign, _ := catest.WorkloadCSR(t, "spiffe://cluster.local/ns/default/sa/admin")
	tests := []struct {
		name    string
		req     ca.Request
		want    map[string]any // attribute -> value ("*" for any value)
		without []string
	}{
		{"an issuance from a pod in a named cluster",
			ca.Request{Peer: "10.0.0.7:4242", CSR: own, Credentials: authn.Request{ClusterID: authn.DefaultClusterID,
				Token: mint(devtoken.Claims{Namespace: "default", ServiceAccount: "sleep", PodName: "sleep-0"})}},
			map[string]any{"level": "INFO", "msg": "certificate issued", "outcome": "issued", "peer": "10.0.0.7:4242",
				"cluster_id": authn.DefaultClusterID, "caller": "ns/default/sa/sleep", "authn": "jwt", "pod": "sleep-0",
				"identity": "spiffe://cluster.local/ns/default/sa/sleep", "key_type": "*", "backend": "file",
				"serial": "*", "not_after": "*"},
			[]string{"error"}},
		{"a refusal without a clusterid header or pod",
			ca.Request{CSR: foreign, Credentials: authn.Request{
				Token: mint(devtoken.Claims{Namespace: "default", ServiceAccount: "sleep"})}},
			map[string]any{"level": "WARN", "msg": "certificate request not served", "reason": "identity_mismatch",
				"caller": "ns/default/sa/sleep", "error": "*", "cluster_id": authn.DefaultClusterID},
			[]string{"pod", "backend", "serial", "not_after"}},
		{"a caller that did not authenticate, without a clusterid header",
			ca.Request{CSR: own, Credentials: authn.Request{Token: "not-a-token"}},
			map[string]any{"level": "WARN", "reason": "unauthenticated", "error": "*"},
			[]string{"cluster_id", "caller", "authn", "identity", "pod", "serial"}},
		{"a caller that did not authenticate, with a clusterid header",
			ca.Request{CSR: own, Credentials: authn.Request{Token: "not-a-token", ClusterID: "east\n"}},
			map[string]any{"reason": "unauthenticated", "cluster_id": `east\n`},
			[]string{"caller", "identity"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf.Reset()
			_, _ = i.Issue(context.Background(), &tt.req)
			lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
			if len(lines) != 1 {
				t.Fatalf("%d audit lines, want 1:\n%s", len(lines), buf.Bytes())
			}
			var rec map[string]any
			if err := json.Unmarshal(lines[0], &rec); err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.want {
				got, ok := rec[k]
				if !ok || (v != "*" && got != v) || (v == "*" && got == "") {
					t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
				}
			}
			for _, k := range tt.without {
				if v, ok := rec[k]; ok {
					t.Errorf("%s = %v, want no such attribute", k, v)
				}
			}
		})
	}
}
