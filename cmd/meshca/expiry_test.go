package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// serve --dev tracks the expiry of every identity it issues to: after one issuance, /metrics carries the
// identity's expiry timestamp (what make run shows a newcomer).
func TestServeExportsPerIdentityExpiry(t *testing.T) {
	d := startDev(t)
	defer func() { d.stop(); <-d.done }()
	d.waitReady(t)
	if _, err := d.request(t, "default", "sleep", nil); err != nil {
		t.Fatalf("CreateCertificate: %v\nlog:\n%s", err, d.stderr.String())
	}
	resp, err := http.Get("http://" + d.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := `meshca_identity_certificate_expiry_timestamp_seconds{namespace="default",service_account="sleep",` +
		`trust_domain="cluster.local"}`
	if !strings.Contains(string(body), want) {
		t.Errorf("/metrics lacks %s", want)
	}
}
