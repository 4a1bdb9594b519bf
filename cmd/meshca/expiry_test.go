package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshca/meshca/ca/catest"
)

// serve --dev tracks the expiry of every identity it issues to: after one issuance, /metrics carries the
// identity's expiry timestamp (what make run shows a newcomer), beside its own serving certificate's expiry and
// the scanned dev CA files; meshca inspect --url reads it.
func TestServeExportsPerIdentityExpiry(t *testing.T) {
	d := startDev(t)
	defer func() { d.stop(); <-d.done }()
	d.waitReady(t)
	if _, err := d.request(t, "default", "sleep", nil); err != nil {
		t.Fatalf("CreateCertificate: %v\nlog:\n%s", err, d.stderr.String())
	}
	for _, want := range []string{
		`meshca_identity_certificate_expiry_timestamp_seconds{namespace="default",service_account="sleep",` +
			`trust_domain="cluster.local"}`,
		"meshca_serving_certificate_expiry_timestamp_seconds ",
		`meshca_scanned_certificate_expiry_timestamp_seconds{ca="true",key="root-cert.pem",name="` +
			filepath.Join(d.dir, "cacerts") + `"`,
	} {
		catest.Eventually(t, 10*time.Second, "/metrics with "+want, func() error {
			resp, err := http.Get("http://" + d.httpAddr + "/metrics")
			if err != nil {
				return err
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(body), want) {
				return fmt.Errorf("/metrics lacks %s", want)
			}
			return nil
		})
	}
	// meshca inspect against the running server reads its /roots.pem: the dev root is far from expiry.
	var stdout, errOut bytes.Buffer
	if code := runNoPanic(t, []string{"inspect", "--url", "http://" + d.httpAddr}, &stdout, &errOut); code != 0 ||
		!strings.Contains(stdout.String(), "CN=cluster.local root CA") {
		t.Errorf("inspect --url exit %d, want 0 and the dev root:\n%s%s", code, stdout.String(), errOut.String())
	}
}
