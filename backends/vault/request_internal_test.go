package vault

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"net"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/meshca/meshca/backends"
)

// TestSignDataTakesNothingFromTheCSR: what is sent to Vault. Mode sign names every SAN itself and keeps the
// common name out of the SANs; sign-verbatim sets the key usages Istio needs.
func TestSignDataTakesNothingFromTheCSR(t *testing.T) {
	p := newSignPKI(t)
	t.Run("mode sign", func(t *testing.T) {
		req := p.request(t, func(r *backends.SignRequest) {
			r.DNSNames = []string{"a.example", "b.example"}
			r.IPAddresses = []net.IP{net.IPv4(10, 0, 0, 1)}
			r.TTL = 90*time.Minute + 500*time.Millisecond
		})
		d := (&Backend{cfg: Config{Mode: ModeSign}}).signData(req)
		want := map[string]any{"csr": d["csr"], "ttl": "5400s", "format": "pem", "exclude_cn_from_sans": true,
			"uri_sans": []string{checkID}, "alt_names": "a.example,b.example", "ip_sans": []string{"10.0.0.1"}}
		if !strings.HasPrefix(d["csr"].(string), "-----BEGIN CERTIFICATE REQUEST-----") || !reflect.DeepEqual(d, want) {
			t.Fatalf("signData = %v, want %v", d, want)
		}
		req.Subject.CommonName = "web"
		if d := (&Backend{cfg: Config{Mode: ModeSign}}).signData(req); d["common_name"] != "web" {
			t.Fatalf("common_name %v, want web", d["common_name"])
		}
	})
	t.Run("mode sign without DNS or IP SANs sends neither", func(t *testing.T) {
		d := (&Backend{cfg: Config{Mode: ModeSign}}).signData(p.request(t, nil))
		for _, k := range []string{"alt_names", "ip_sans", "common_name"} {
			if _, ok := d[k]; ok {
				t.Errorf("%s sent: %v", k, d[k])
			}
		}
		if _, ok := d["uri_sans"]; !ok {
			t.Error("uri_sans not sent")
		}
		d = (&Backend{cfg: Config{Mode: ModeSign}}).signData(p.request(t, func(r *backends.SignRequest) {
			r.URIs = nil
		}))
		if _, ok := d["uri_sans"]; ok {
			t.Errorf("uri_sans sent without URI SANs: %v", d["uri_sans"])
		}
	})
	t.Run("sign-verbatim", func(t *testing.T) {
		d := (&Backend{cfg: Config{Mode: ModeSignVerbatim}}).signData(p.request(t, nil))
		if !reflect.DeepEqual(d["ext_key_usage"], []string{"ServerAuth", "ClientAuth"}) ||
			!reflect.DeepEqual(d["key_usage"], []string{"DigitalSignature"}) {
			t.Fatalf("usages %v, %v", d["ext_key_usage"], d["key_usage"])
		}
		for _, k := range []string{"uri_sans", "exclude_cn_from_sans"} {
			if _, ok := d[k]; ok {
				t.Errorf("%s sent in sign-verbatim mode", k)
			}
		}
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		d = (&Backend{cfg: Config{Mode: ModeSignVerbatim}}).signData(p.request(t, func(r *backends.SignRequest) {
			r.PublicKey = key.Public()
		}))
		if !reflect.DeepEqual(d["key_usage"], []string{"DigitalSignature", "KeyEncipherment"}) {
			t.Fatalf("RSA key usage %v", d["key_usage"])
		}
	})
}

func TestSignPath(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{Mount: "pki", Role: "mesh", Mode: ModeSign}, "pki/sign/mesh"},
		{Config{Mount: "pki", Role: "mesh", Mode: ModeSign, IssuerRef: "i2"}, "pki/issuer/i2/sign/mesh"},
		{Config{Mount: "pki", Mode: ModeSignVerbatim}, "pki/sign-verbatim"},
		{Config{Mount: "pki", Role: "mesh", Mode: ModeSignVerbatim}, "pki/sign-verbatim/mesh"},
		{Config{Mount: "pki", Role: "mesh", Mode: ModeSignVerbatim, IssuerRef: "i2"},
			"pki/issuer/i2/sign-verbatim/mesh"},
	}
	for _, tt := range tests {
		if got := signPath(&tt.cfg); got != tt.want {
			t.Errorf("signPath(%+v) = %q, want %q", tt.cfg, got, tt.want)
		}
	}
}

// TestConfiguredAnchorsAreCheckedAgainstThePins: rootsPEM or rootsFile give the anchors, each of which must match
// a pin when pins are set.
func TestConfiguredAnchorsAreCheckedAgainstThePins(t *testing.T) {
	p := newSignPKI(t)
	other := newSignPKI(t)
	both := pemOf(p.root, other.root)
	files := map[string]string{"/roots.pem": both}
	read := func(name string) ([]byte, error) {
		if s, ok := files[name]; ok {
			return []byte(s), nil
		}
		return nil, os.ErrNotExist
	}
	tests := []struct {
		name string
		cfg  Config
		want int // anchors; -1: an error
	}{
		{"rootsPEM without pins", Config{RootsPEM: both}, 2},
		{"rootsPEM with every root pinned", Config{RootsPEM: both,
			RootFingerprints: []string{Fingerprint(other.root), Fingerprint(p.root)}}, 2},
		{"rootsPEM with a root not pinned", Config{RootsPEM: both, RootFingerprints: []string{Fingerprint(p.root)}},
			-1},
		{"rootsFile", Config{RootsFile: "/roots.pem"}, 2},
		{"a rootsFile that cannot be read", Config{RootsFile: "/missing.pem"}, -1},
		{"pins alone: the anchors are found among the mount's issuers", Config{
			RootFingerprints: []string{Fingerprint(p.root)}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.ReadFile = read
			anchors, err := (&Backend{cfg: tt.cfg}).configuredAnchors()
			if (err != nil) != (tt.want < 0) || (tt.want >= 0 && len(anchors) != tt.want) {
				t.Fatalf("configuredAnchors = %d anchors, %v; want %d", len(anchors), err, tt.want)
			}
		})
	}
	files["/junk.pem"] = "not PEM"
	if _, err := (&Backend{cfg: Config{RootsFile: "/junk.pem", ReadFile: read}}).configuredAnchors(); err == nil {
		t.Fatal("configuredAnchors accepted a rootsFile without certificates")
	}
}

// TestFingerprints: pins are SHA-256 in hex, with or without colons, in either case; anything else is refused.
func TestFingerprints(t *testing.T) {
	p := newSignPKI(t)
	fp := Fingerprint(p.root)
	var colons []string
	for i := 0; i < len(fp); i += 2 {
		colons = append(colons, strings.ToUpper(fp[i:i+2]))
	}
	for _, s := range []string{fp, strings.Join(colons, ":"), " " + fp + " "} {
		got, err := parseFingerprint(s)
		if err != nil || got != fingerprintBytes(p.root) {
			t.Errorf("parseFingerprint(%q) = %x, %v; want %s", s, got, err, fp)
		}
	}
	for _, s := range []string{fp[:62], fp + "ab", "zz" + fp[2:], ""} {
		if _, err := parseFingerprint(s); err == nil {
			t.Errorf("parseFingerprint(%q) accepted", s)
		}
	}
	b := &Backend{cfg: Config{RootFingerprints: []string{fp, strings.Join(colons, ":")}}}
	if pins := b.pins(); len(pins) != 2 || pins[0] != fingerprintBytes(p.root) || pins[1] != pins[0] {
		t.Fatalf("pins %x", pins)
	}
	if !isAnchor(p.root, []*x509.Certificate{p.inter, p.root}) || isAnchor(p.inter, []*x509.Certificate{p.root}) {
		t.Fatal("isAnchor does not compare certificates")
	}
}
