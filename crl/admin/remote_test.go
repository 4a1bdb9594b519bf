package admin

import (
	"strings"
	"testing"
)

func TestRemoteConfigValidate(t *testing.T) {
	good := func() RemoteConfig {
		return RemoteConfig{Addr: ":15018", CertFile: "tls.crt", KeyFile: "tls.key", ClientCAFile: "ca.crt",
			AllowedIdentities: []string{"spiffe://ops.example/ns/ops/sa/admin"}}
	}
	tests := []struct {
		name string
		edit func(*RemoteConfig)
		want string // a key the error names; empty: valid
	}{
		{"a complete configuration", func(*RemoteConfig) {}, ""},
		{"an address without a port", func(c *RemoteConfig) { c.Addr = "0.0.0.0" }, "crl.admin.remote.addr"},
		{"no client CA", func(c *RemoteConfig) { c.ClientCAFile = "" }, "crl.admin.remote.clientCAFile"},
		{"no certificate", func(c *RemoteConfig) { c.CertFile = "" }, "crl.admin.remote.certFile"},
		{"no allowed identity: any client of the CA would do", func(c *RemoteConfig) { c.AllowedIdentities = nil },
			"crl.admin.remote.allowedIdentities"},
		{"an identity with a newline", func(c *RemoteConfig) { c.AllowedIdentities = []string{"a\nb"} },
			"crl.admin.remote.allowedIdentities"},
		{"an identity past the bound", func(c *RemoteConfig) {
			c.AllowedIdentities = []string{strings.Repeat("a", maxIdentity+1)}
		}, "crl.admin.remote.allowedIdentities"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good()
			tt.edit(&c)
			err := c.Validate()
			if tt.want == "" && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Validate = %v, want an error naming %s", err, tt.want)
			}
		})
	}
}
