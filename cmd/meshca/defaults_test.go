package main

import (
	"bytes"
	"strings"
	"testing"
)

// config print --defaults shows what serve runs with: every default filled in, the file's own settings kept,
// and the output is a configuration that loads and prints the same again.
func TestConfigPrintDefaults(t *testing.T) {
	for _, f := range []string{"../../manifests/base/config.yaml", "../../manifests/overlays/file/config.yaml",
		"../../manifests/overlays/vault/config.yaml", "../../manifests/overlays/stepca/config.yaml"} {
		t.Run(f, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := runNoPanic(t, []string{"config", "print", "--defaults", f}, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			printed := stdout.String()
			for _, want := range []string{"signTimeout: 10s", "leeway: 30s", "servingTTL: 24h", "overdueAt: 0.6",
				"maxIdentities: 10000", "maxSeries: 10000", "clientCert: true", "trustDomain: cluster.local"} {
				if !strings.Contains(printed, want) {
					t.Errorf("no %q in\n%s", want, printed)
				}
			}
			c, err := loadBytes(stdout.Bytes())
			if err != nil {
				t.Fatalf("the printed defaults do not load: %v\n%s", err, printed)
			}
			again, err := encodeConfig(c.withDefaults())
			if err != nil {
				t.Fatal(err)
			}
			if string(again) != printed {
				t.Errorf("defaults of the printed defaults differ:\n%s\nfirst:\n%s", again, printed)
			}
		})
	}
}

// The settings a file makes win over the defaults, in every section the file has.
func TestConfigDefaultsKeepTheFile(t *testing.T) {
	c, err := loadBytes([]byte("issuance: {trustDomain: cluster.local, defaultTTL: 12h, maxTTL: 12h}\n" + okServer +
		"signTimeout: 3s\nexpiry: {grace: 2h, scan: {interval: 1m}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := c.withDefaults()
	if d.Issuance.DefaultTTL.String() != "12h0m0s" || d.SignTimeout.String() != "3s" ||
		d.Expiry.Grace.String() != "2h0m0s" || d.Expiry.Scan.Interval.String() != "1m0s" {
		t.Fatalf("file settings overwritten: %+v", d)
	}
	if d.Backends[0].File.ReloadInterval == 0 || d.Issuance.MinTTL == 0 {
		t.Fatalf("defaults not filled in: %+v", d)
	}
	if len(d.Expiry.Scan.Paths) != 1 || d.Expiry.Scan.Paths[0] != "/etc/cacerts" {
		t.Fatalf("expiry.scan.paths = %q, want the file backend's dir", d.Expiry.Scan.Paths)
	}
	if c.Backends[0].File.ReloadInterval != 0 {
		t.Fatal("withDefaults changed the configuration it was given")
	}
}
