package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The configuration files shipped in manifests/ (one per kustomization, mounted from the meshca-config
// ConfigMap) decode strictly and validate as meshca serve --config would.
func TestShippedConfigs(t *testing.T) {
	files, err := filepath.Glob("../../manifests/*/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	overlays, _ := filepath.Glob("../../manifests/overlays/*/config.yaml")
	files = append(files, overlays...)
	if len(files) < 4 {
		t.Fatalf("found %d config files (%v), want base and the file, vault and stepca overlays", len(files), files)
	}
	for _, f := range files {
		name := strings.TrimPrefix(filepath.Dir(f), "../../manifests/")
		t.Run(name, func(t *testing.T) {
			c, err := LoadConfig(f)
			if err != nil {
				t.Fatal(err)
			}
			if c.Issuance.TrustDomain != "cluster.local" || c.Server.Namespace != "istio-system" ||
				c.Server.ServiceAccount != "meshca" {
				t.Errorf(
					"trust domain %q, namespace %q, service account %q: "+
						"want cluster.local, istio-system, meshca (manifests/istio and rbac.yaml)",
					c.Issuance.TrustDomain,
					c.Server.Namespace,
					c.Server.ServiceAccount,
				)
			}
			found := false
			for _, n := range c.Server.DNSNames {
				found = found || n == "meshca.istio-system.svc"
			}
			if !found {
				t.Errorf(
					"server.dnsNames %v lack meshca.istio-system.svc, the host of global.caAddress",
					c.Server.DNSNames,
				)
			}
		})
	}
}

// The configuration example in README.md decodes strictly and validates, so the reference cannot drift.
func TestReadmeConfigExample(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	start := strings.Index(s, "```yaml\nissuance:")
	if start < 0 {
		t.Fatal("README.md has no ```yaml block starting with issuance:")
	}
	s = s[start+len("```yaml\n"):]
	example := s[:strings.Index(s, "```")]
	var c Config
	if err := decodeStrict([]byte(example), &c); err != nil {
		t.Fatalf("README example: %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("README example: %v", err)
	}
	if len(c.Backends) != 2 || c.Backends[0].Vault == nil || c.Backends[1].File == nil || c.Kubernetes == nil ||
		c.TrustBundle == nil || len(c.Policy.Rules) != 1 {
		t.Fatalf("README example decoded to %+v", c)
	}
}
