package kubesigner_test

import (
	"strings"
	"testing"
	"time"

	"github.com/meshca/meshca/ca/kubesigner"
)

// Every problem a configuration file can have is reported at once, each under its key.
func TestConfigValidate(t *testing.T) {
	good := func() kubesigner.Config {
		return kubesigner.Config{Signers: []kubesigner.SignerConfig{{Name: "meshca.io/workloads"}},
			LeaseNamespace: "istio-system"}
	}
	cases := []struct {
		name   string
		change func(*kubesigner.Config)
		want   []string // substrings, one per expected problem; none means valid
	}{
		{"the smallest configuration is valid", func(*kubesigner.Config) {}, nil},
		{"signers routed to backends and two requesters are valid", func(c *kubesigner.Config) {
			c.Signers = append(c.Signers, kubesigner.SignerConfig{Name: "meshca.io/payments",
				Backends: []string{"vault", "file"}})
			c.Requesters = []string{kubesigner.DefaultRequester, "system:serviceaccount:istio-canary:istiod"}
		}, nil},
		{"no signer is refused", func(c *kubesigner.Config) { c.Signers = nil }, []string{"signers:"}},
		{"a signer name without a path is refused", func(c *kubesigner.Config) { c.Signers[0].Name = "meshca.io" },
			[]string{"signers[0].name:"}},
		{"Kubernetes' own signers are refused", func(c *kubesigner.Config) {
			c.Signers[0].Name = "kubernetes.io/kube-apiserver-client"
		}, []string{"signers[0].name:"}},
		{"a signer listed twice is refused", func(c *kubesigner.Config) { c.Signers = append(c.Signers, c.Signers[0]) },
			[]string{"signers[1].name:"}},
		{"a repeated backend is refused", func(c *kubesigner.Config) { c.Signers[0].Backends = []string{"a", "a"} },
			[]string{"signers[0].backends[1]:"}},
		{"a requester that is not a service account is refused", func(c *kubesigner.Config) {
			c.Requesters = []string{"alice"}
		}, []string{"requesters[0]:"}},
		{"a missing lease namespace is refused", func(c *kubesigner.Config) { c.LeaseNamespace = "" },
			[]string{"leaseNamespace:"}},
		{"inverted lease timings are refused", func(c *kubesigner.Config) { c.RenewDeadline = time.Minute },
			[]string{"need leaseDuration"}},
		{"everything wrong is reported at once", func(c *kubesigner.Config) {
			c.Signers[0].Name, c.LeaseNamespace, c.Workers = "x", "Not_A_Label", -1
		}, []string{"signers[0].name:", "leaseNamespace:", "workers and pollInterval must not be negative"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := good()
			c.change(&cfg)
			err := cfg.Validate()
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(c.want) {
				t.Errorf("%d problems reported, want %d:\n%v", len(lines), len(c.want), err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), "kubesigner: "+w) {
					t.Errorf("no problem reported under %q:\n%v", w, err)
				}
			}
		})
	}
}

// Signers may name only configured backends.
func TestCheckBackends(t *testing.T) {
	cfg := kubesigner.Config{Signers: []kubesigner.SignerConfig{{Name: "meshca.io/a", Backends: []string{"vault"}},
		{Name: "meshca.io/b", Backends: []string{"file", "vualt"}}}}
	err := cfg.CheckBackends([]string{"file", "vault"})
	if err == nil || !strings.Contains(err.Error(), "signers[1].backends[1]") || strings.Count(err.Error(), "\n") != 0 {
		t.Fatalf("got %v, want exactly signers[1].backends[1] refused", err)
	}
}

// The default router owns exactly the configured names and routes each to its backends.
func TestStaticRouter(t *testing.T) {
	r := kubesigner.StaticRouter{{Name: "meshca.io/a", Backends: []string{"vault"}}, {Name: "meshca.io/b"}}
	if !r.Owns("meshca.io/a") || !r.Owns("meshca.io/b") || r.Owns("meshca.io/c") || r.Owns("") {
		t.Error("Owns does not match the configured names")
	}
	if bs, err := r.Route("meshca.io/a", "shop"); err != nil || len(bs) != 1 || bs[0] != "vault" {
		t.Errorf("Route(meshca.io/a) = %v, %v; want [vault]", bs, err)
	}
	if bs, err := r.Route("meshca.io/b", "shop"); err != nil || len(bs) != 0 {
		t.Errorf("Route(meshca.io/b) = %v, %v; want all backends", bs, err)
	}
}
