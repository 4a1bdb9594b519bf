package expiry_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/ca/expiry"
	"github.com/prometheus/client_golang/prometheus"
)

func problemKinds(ps []expiry.Problem) []expiry.ProblemKind {
	var out []expiry.ProblemKind
	for _, p := range ps {
		out = append(out, p.Kind)
	}
	return out
}

// Each layout's certificate is checked against its own key and roots, and only there.
func TestParseSetChecksEachLayout(t *testing.T) {
	p, other := newPKI(t), newPKI(t)
	leaf := makeCert(t, certSpec{Serial: 10, NotBefore: t0, Life: day, Parent: p.Inter,
		SPIFFE: "spiffe://cluster.local/ns/a/sb/b"})
	tests := []struct {
		name  string
		files map[string][]byte
		key   string // the data key whose first certificate carries the problems
		want  []expiry.ProblemKind
	}{
		{"a cacerts set that verifies", map[string][]byte{"ca-cert.pem": certsPEM(p.Inter),
			"ca-key.pem": keyPEM(t, p.Inter.Key), "cert-chain.pem": certsPEM(p.Inter, p.Root),
			"root-cert.pem": certsPEM(p.Root)}, "ca-cert.pem", nil},
		{"a cacerts set whose CA is its own root", map[string][]byte{"ca-cert.pem": certsPEM(p.Root),
			"ca-key.pem": keyPEM(t, p.Root.Key), "root-cert.pem": certsPEM(p.Root)}, "ca-cert.pem", nil},
		{"a cacerts set whose key is another CA's", map[string][]byte{"ca-cert.pem": certsPEM(p.Inter),
			"ca-key.pem": keyPEM(t, other.Inter.Key), "root-cert.pem": certsPEM(p.Root)}, "ca-cert.pem",
			[]expiry.ProblemKind{expiry.ProblemKeyMismatch}},
		{"a cacerts set with another hierarchy's root", map[string][]byte{"ca-cert.pem": certsPEM(p.Inter),
			"root-cert.pem": certsPEM(other.Root)}, "ca-cert.pem", []expiry.ProblemKind{expiry.ProblemChain}},
		{"istio-agent output with the intermediate in the chain", map[string][]byte{
			"cert-chain.pem": certsPEM(leaf, p.Inter), "key.pem": keyPEM(t, leaf.Key),
			"root-cert.pem": certsPEM(p.Root)}, "cert-chain.pem", nil},
		{"istio-agent output missing the intermediate", map[string][]byte{"cert-chain.pem": certsPEM(leaf),
			"root-cert.pem": certsPEM(p.Root)}, "cert-chain.pem", []expiry.ProblemKind{expiry.ProblemChain}},
		{"a kubernetes.io/tls Secret whose chain ends in its root", map[string][]byte{
			"tls.crt": certsPEM(leaf, p.Inter, p.Root), "tls.key": keyPEM(t, leaf.Key)}, "tls.crt", nil},
		{"a kubernetes.io/tls Secret with ca.crt of another hierarchy and another key", map[string][]byte{
			"tls.crt": certsPEM(leaf, p.Inter), "tls.key": keyPEM(t, p.Inter.Key), "ca.crt": certsPEM(other.Root)},
			"tls.crt", []expiry.ProblemKind{expiry.ProblemChain, expiry.ProblemKeyMismatch}},
		{"loose certificates are not chain-checked", map[string][]byte{"a.pem": certsPEM(leaf)}, "a.pem", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := expiry.ParseSet(expiry.Source{Kind: expiry.KindSecret, Namespace: "ns", Name: "s"}, tt.files)
			var got []expiry.ProblemKind
			first := map[string]bool{}
			for _, c := range set.Certs {
				if c.Source.Key == tt.key && !first[c.Source.Key] {
					got = problemKinds(c.Problems)
				} else if len(c.Problems) > 0 {
					t.Errorf("%s (%s) has problems %v: only the layout's certificate is checked", c.Subject,
						c.Source.Key, c.Problems)
				}
				first[c.Source.Key] = true
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("problems %v, want %v", got, tt.want)
			}
			if len(set.Problems) > 0 {
				t.Errorf("source problems %v", set.Problems)
			}
		})
	}
}

// Private keys never stay in a scanner's memory: stripping replaces them by their public half, and the key
// check gives the same answer on the stripped data.
func TestStripPrivateKeysKeepsTheKeyCheck(t *testing.T) {
	p, other := newPKI(t), newPKI(t)
	for _, tc := range []struct {
		name     string
		key      []byte
		mismatch bool
	}{{"the CA's own key", keyPEM(t, p.Inter.Key), false}, {"another key", keyPEM(t, other.Inter.Key), true}} {
		t.Run(tc.name, func(t *testing.T) {
			stripped, changed := expiry.StripPrivateKeys(tc.key)
			if !changed || bytes.Contains(stripped, []byte("PRIVATE")) {
				t.Fatalf("changed %v, stripped still holds a private key:\n%s", changed, stripped)
			}
			set := expiry.ParseSet(expiry.Source{Kind: expiry.KindSecret, Name: "s"}, map[string][]byte{
				"ca-cert.pem": certsPEM(p.Inter), "ca-key.pem": stripped})
			got := slices.Contains(problemKinds(set.Certs[0].Problems), expiry.ProblemKeyMismatch)
			if got != tc.mismatch {
				t.Errorf("key mismatch reported %v, want %v", got, tc.mismatch)
			}
		})
	}
	if out, changed := expiry.StripPrivateKeys(certsPEM(p.Root)); changed || !bytes.Equal(out, certsPEM(p.Root)) {
		t.Error("data without a private key was changed")
	}
}

// The inventory exports one expiry series per certificate and key with bounded labels, the CRL's thisUpdate
// and nextUpdate, and a count of failed checks; a deleted source takes its series with it.
func TestInventoryExportsScannedCertificates(t *testing.T) {
	reg := prometheus.NewRegistry()
	inv, err := expiry.NewInventory(expiry.InventoryConfig{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	p, other := newPKI(t), newPKI(t)
	long := strings.Repeat("x", 300)
	leaf := makeCert(t, certSpec{CN: long, Serial: 0xabc, NotBefore: t0, Life: day, Parent: p.Inter})
	src := expiry.Source{Kind: expiry.KindSecret, Namespace: "istio-system", Name: "cacerts"}
	inv.Put(expiry.ParseSet(src, map[string][]byte{
		"ca-cert.pem": certsPEM(p.Inter), "root-cert.pem": certsPEM(p.Root, p.Root), // a duplicate root
		"ca-key.pem": keyPEM(t, other.Inter.Key), "ca-crl.pem": crlPEM(t, p.Inter, nil, 1, t0, 7*day),
		"extra.pem": certsPEM(leaf),
	}))
	certs := gather(t, reg, "meshca_scanned_certificate_expiry_timestamp_seconds")
	want := fmt.Sprintf("ca=true,key=ca-cert.pem,name=cacerts,namespace=istio-system,serial=2,"+
		"source=secret,subject=%s", p.Inter.Cert.Subject)
	if got, ok := certs[want]; !ok || got != float64(p.Inter.Cert.NotAfter.Unix()) {
		t.Errorf("series %s = %v (present %v), want %v; have %v", want, got, ok, p.Inter.Cert.NotAfter.Unix(), certs)
	}
	if len(certs) != 3 {
		t.Errorf("%d certificate series, want 3 (the duplicate root once)", len(certs))
	}
	for labels := range certs {
		if len(labels) > 400 {
			t.Errorf("unbounded labels: %d bytes", len(labels))
		}
	}
	crlLabels := fmt.Sprintf("issuer=%s,key=ca-crl.pem,name=cacerts,namespace=istio-system,source=secret",
		p.Inter.Cert.Subject)
	if got := gather(t, reg, "meshca_scanned_crl_next_update_timestamp_seconds")[crlLabels]; got !=
		float64(t0.Add(7*day).Unix()) {
		t.Errorf("CRL nextUpdate %v", got)
	}
	if got := gather(t, reg, "meshca_scanned_crl_this_update_timestamp_seconds")[crlLabels]; got != float64(t0.Unix()) {
		t.Errorf("CRL thisUpdate %v", got)
	}
	probs := gather(t, reg, "meshca_scanned_problems")
	const mismatch = "key=ca-cert.pem,name=cacerts,namespace=istio-system,problem=key_mismatch,source=secret"
	if got := probs[mismatch]; got != 1 {
		t.Errorf("key_mismatch problems %v, have %v", got, probs)
	}
	inv.Delete(src)
	if n := len(gather(t, reg, "meshca_scanned_certificate_expiry_timestamp_seconds")); n != 0 {
		t.Errorf("%d series after the source was deleted", n)
	}
}

// The series cap keeps the certificates that expire soonest and says how many it left out.
func TestInventoryCapKeepsTheSoonest(t *testing.T) {
	reg := prometheus.NewRegistry()
	inv, err := expiry.NewInventory(expiry.InventoryConfig{Registerer: reg, MaxSeries: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		c := makeCert(t, certSpec{CN: fmt.Sprint("c", i), Serial: int64(i + 1), NotBefore: t0,
			Life: time.Duration(4-i) * day})
		inv.Put(expiry.ParseSet(expiry.Source{Kind: expiry.KindFile, Name: "d", Key: fmt.Sprint(i)},
			map[string][]byte{fmt.Sprint(i): certsPEM(c)}))
	}
	var serials []string
	for labels := range gather(t, reg, "meshca_scanned_certificate_expiry_timestamp_seconds") {
		serials = append(serials, labels[strings.Index(labels, "serial=")+7:][:1])
	}
	slices.Sort(serials)
	if !slices.Equal(serials, []string{"3", "4"}) {
		t.Errorf("kept serials %v, want the two expiring soonest (3, 4)", serials)
	}
	if got := gather(t, reg, "meshca_scanned_series_dropped")[""]; got != 2 {
		t.Errorf("dropped %v, want 2", got)
	}
}

// The file watcher follows a rotation (a Kubernetes-style ..data symlink swap), reports a path that
// disappeared, and does not parse an unchanged set again.
func TestFileWatcherFollowsChanges(t *testing.T) {
	dir := t.TempDir()
	p1, p2 := newPKI(t), newPKI(t)
	mount := filepath.Join(dir, "cacerts")
	swap := func(name string, p testPKI) {
		t.Helper()
		data := filepath.Join(dir, name)
		writeFiles(t, data, map[string][]byte{"ca-cert.pem": certsPEM(p.Inter), "root-cert.pem": certsPEM(p.Root)})
		os.MkdirAll(mount, 0o755)
		link := filepath.Join(mount, "..data")
		os.Remove(link + ".tmp")
		if err := os.Symlink(data, link+".tmp"); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(link+".tmp", link); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"ca-cert.pem", "root-cert.pem"} {
			os.Symlink(filepath.Join("..data", f), filepath.Join(mount, f))
		}
	}
	swap("v1", p1)
	inv, _ := expiry.NewInventory(expiry.InventoryConfig{})
	w, err := expiry.NewFileWatcher(expiry.FilesConfig{Paths: []string{mount}, Inventory: inv,
		Logger: catest.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	notAfter := func() time.Time {
		for _, s := range inv.Sets() {
			for _, c := range s.Certs {
				if c.Source.Key == "ca-cert.pem" {
					return c.NotAfter
				}
			}
		}
		return time.Time{}
	}
	w.Scan()
	first := inv.Sets()[0]
	if !notAfter().Equal(p1.Inter.Cert.NotAfter) {
		t.Fatalf("first scan: %v", inv.Sets())
	}
	w.Scan()
	if inv.Sets()[0] != first {
		t.Error("an unchanged directory was parsed again")
	}
	p2.Inter = makeCert(t, certSpec{CN: "rotated", Serial: 3, NotBefore: t0, Life: 2 * 365 * day, CA: true,
		Parent: p2.Root})
	swap("v2", p2)
	w.Scan()
	if !notAfter().Equal(p2.Inter.Cert.NotAfter) {
		t.Errorf("after the swap: notAfter %v, want %v", notAfter(), p2.Inter.Cert.NotAfter)
	}
	os.RemoveAll(mount)
	w.Scan()
	if s := inv.Sets(); len(s) != 1 || len(s[0].Certs) != 0 || len(s[0].Problems) != 1 ||
		s[0].Problems[0].Kind != expiry.ProblemUnreadable {
		t.Errorf("after removal: %+v", s)
	}
	single := filepath.Join(dir, "v1", "ca-cert.pem")
	w, err = expiry.NewFileWatcher(expiry.FilesConfig{Paths: []string{single}, Inventory: inv,
		Logger: catest.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	before := len(inv.Sets())
	w.Scan()
	os.Remove(single)
	w.Scan()
	if s := inv.Sets(); len(s) != before+1 {
		t.Errorf("after a watched file vanished: %d sets, want %d (its certificates replaced by a problem)",
			len(s), before+1)
	}
	if _, err := expiry.NewFileWatcher(expiry.FilesConfig{Inventory: inv}); err == nil {
		t.Error("a watcher without paths was accepted")
	}
}

// A running meshca's published roots are read over its HTTP side port; it publishes no CRL here, which is
// not a problem.
func TestFetchMeshca(t *testing.T) {
	m := catest.StartMeshca(t, catest.MeshcaOptions{})
	set := expiry.FetchMeshca(context.Background(), http.DefaultClient, "http://"+m.HTTPAddr+"/")
	if len(set.Problems) > 0 || len(set.Certs) != 1 || !set.Certs[0].IsCA || set.Certs[0].Source.Key != "roots.pem" {
		t.Errorf("set %+v", set)
	}
	bad := expiry.FetchMeshca(context.Background(), http.DefaultClient, "http://"+m.HTTPAddr+"/nothing")
	if len(bad.Problems) != 1 || bad.Problems[0].Kind != expiry.ProblemUnreadable {
		t.Errorf("a wrong base URL: %+v", bad)
	}
}

// FuzzParseSet feeds arbitrary data to the parser as every key of every layout: it must not panic, and what
// it reports stays bounded.
func FuzzParseSet(f *testing.F) {
	p := newPKI(f)
	f.Add(certsPEM(p.Inter, p.Root))
	f.Add(crlPEM(f, p.Inter, nil, 1, t0, day))
	f.Add(keyPEM(f, p.Inter.Key))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		files := map[string][]byte{}
		for _, k := range []string{"ca-cert.pem", "ca-key.pem", "cert-chain.pem", "root-cert.pem", "ca-crl.pem",
			"key.pem", "tls.crt", "tls.key", "ca.crt"} {
			files[k] = data
		}
		set := expiry.ParseSet(expiry.Source{Kind: expiry.KindFile, Name: "f"}, files)
		for _, pr := range set.Problems {
			if len(pr.Detail) > 200 {
				t.Errorf("detail of %d bytes", len(pr.Detail))
			}
		}
		stripped, _ := expiry.StripPrivateKeys(data)
		for rest := stripped; ; {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			if strings.HasSuffix(b.Type, "PRIVATE KEY") && len(b.Bytes) > 0 {
				t.Errorf("a private key survived stripping:\n%s", stripped)
			}
		}
		expiry.NewReport([]*expiry.Set{set}, expiry.ReportOptions{Now: t0}).WriteTable(&bytes.Buffer{})
	})
}

// The serving certificate's gauges follow the certificate the server holds, and say nothing before it has one.
func TestServingCertificateGauges(t *testing.T) {
	reg := prometheus.NewRegistry()
	var cur *x509.Certificate
	if err := expiry.RegisterServing(reg, func() *x509.Certificate { return cur }); err != nil {
		t.Fatal(err)
	}
	if n := len(gather(t, reg, "meshca_serving_certificate_expiry_timestamp_seconds")); n != 0 {
		t.Errorf("%d series before there is a certificate", n)
	}
	cur = makeCert(t, certSpec{CN: "meshca", Serial: 5, NotBefore: t0, Life: day}).Cert
	got := gather(t, reg, "meshca_serving_certificate_expiry_timestamp_seconds")[""]
	if got != float64(cur.NotAfter.Unix()) {
		t.Errorf("expiry %v, want %v", got, cur.NotAfter.Unix())
	}
	if got := gather(t, reg, "meshca_serving_certificate_not_before_timestamp_seconds")[""]; got != float64(t0.Unix()) {
		t.Errorf("notBefore %v, want %v", got, t0.Unix())
	}
}
