package kube

import (
	"crypto/tls"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/meshca/meshca/internal/compliance"
)

// TestWithPolicyRestrictsTheClientsTLS: under a COMPLIANCE_POLICY the API-server client's TLS follows it, with
// its own settings (the server name here) carried over; without one, or over plain HTTP, nothing changes.
func TestWithPolicyRestrictsTheClientsTLS(t *testing.T) {
	c := &rest.Config{Host: "https://127.0.0.1:6443", TLSClientConfig: rest.TLSClientConfig{ServerName: "api"}}
	if err := WithPolicy(c, compliance.FIPS1402); err != nil {
		t.Fatal(err)
	}
	tr, ok := c.Transport.(*http.Transport)
	if !ok || tr.TLSClientConfig == nil || tr.TLSClientConfig.MaxVersion != tls.VersionTLS12 ||
		tr.TLSClientConfig.ServerName != "api" || tr.Proxy == nil || tr.TLSHandshakeTimeout != 10*time.Second ||
		tr.IdleConnTimeout != 90*time.Second {
		t.Fatalf("transport %#v does not follow fips-140-2 with the client's server name", c.Transport)
	}
	if c.TLSClientConfig.ServerName != "" {
		t.Fatalf("TLS options left beside the custom transport: %+v", c.TLSClientConfig)
	}
	if _, err := rest.HTTPClientFor(c); err != nil {
		t.Fatalf("client-go refuses the configuration: %v", err)
	}
	for _, tt := range []struct {
		name string
		c    *rest.Config
		p    compliance.Policy
	}{
		{"no policy", &rest.Config{Host: "https://127.0.0.1:6443"}, compliance.None},
		{"plain HTTP", &rest.Config{Host: "http://127.0.0.1:8080"}, compliance.PQC},
	} {
		if err := WithPolicy(tt.c, tt.p); err != nil || tt.c.Transport != nil {
			t.Errorf("%s: WithPolicy set transport %v (%v), want none", tt.name, tt.c.Transport, err)
		}
	}
	if err := WithPolicy(nil, compliance.PQC); err != nil {
		t.Errorf("WithPolicy(nil): %v", err)
	}
	bad := &rest.Config{Host: "https://127.0.0.1:6443", TLSClientConfig: rest.TLSClientConfig{CAFile: "/nonexistent"}}
	if err := WithPolicy(bad, compliance.PQC); err == nil {
		t.Error("WithPolicy accepted a CA file that does not exist")
	}
}

// TestLoadRESTConfig: a kubeconfig file is read; outside a pod, no kubeconfig is an error that says to set one.
func TestLoadRESTConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kubeconfigFor("https://10.0.0.1:6443", ""), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadRESTConfig(path)
	if err != nil || c.Host != "https://10.0.0.1:6443" || c.BearerToken != "abc" {
		t.Fatalf("LoadRESTConfig = %+v, %v", c, err)
	}
	if _, err := LoadRESTConfig(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("LoadRESTConfig read a missing kubeconfig")
	}
	if os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
		if _, err := LoadRESTConfig(""); err == nil {
			t.Fatal("LoadRESTConfig found an in-cluster configuration outside a pod")
		}
	}
	u, err := apiServerURL(&rest.Config{Host: "10.0.0.1:6443", TLSClientConfig: rest.TLSClientConfig{Insecure: true}})
	if err != nil || u != "https://10.0.0.1:6443" {
		t.Fatalf("apiServerURL = %q, %v", u, err)
	}
	if _, err := apiServerURL(&rest.Config{Host: "https://a b"}); err == nil {
		t.Fatal("apiServerURL accepted a malformed host")
	}
}
