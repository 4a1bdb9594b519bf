package file_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca/catest"
)

// TestLeafTemplateEdges: the lifetime must be positive, a leaf needs a SAN of any kind (a URI beside a DNS name
// or an IP address counts each), and notBefore is backdated by Backdate on the configured clock, in whole
// seconds.
func TestLeafTemplateEdges(t *testing.T) {
	g := generate(t)
	now := time.Now().Add(time.Hour).Truncate(time.Second).Add(400 * time.Millisecond) // the CA is valid from now
	b, err := file.New(context.Background(), file.Config{Dir: writeDir(t, g), Backdate: 10 * time.Second,
		Clock: func() time.Time { return now }, Logger: catest.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	id := []*url.URL{mustURL(t, "spiffe://cluster.local/ns/a/sa/b")}
	for _, tc := range []struct {
		name string
		req  backends.SignRequest
		want error
	}{
		{"a zero lifetime is refused", backends.SignRequest{URIs: id}, backends.ErrRefused},
		{"a negative lifetime is refused", backends.SignRequest{URIs: id, TTL: -time.Second}, backends.ErrRefused},
		{"a request without a SAN is refused", backends.SignRequest{TTL: time.Hour}, backends.ErrRefused},
		{"a URI beside a DNS name is signed",
			backends.SignRequest{URIs: id, DNSNames: []string{"cart.shop.svc"}, TTL: time.Hour}, nil},
		{"a URI beside an IP address is signed",
			backends.SignRequest{URIs: id, IPAddresses: []net.IP{net.ParseIP("10.0.0.7")}, TTL: time.Hour}, nil},
		{"a one-second lifetime is signed", backends.SignRequest{URIs: id, TTL: time.Second}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.PublicKey = catest.ECKey(t).Public()
			resp, err := b.Sign(context.Background(), &tc.req)
			if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Fatalf("Sign = %v, want %v", err, tc.want)
			}
			if err != nil {
				return
			}
			leaf := resp.Leaf()
			if want := now.Add(-10 * time.Second).Truncate(time.Second); !leaf.NotBefore.Equal(want) {
				t.Errorf("NotBefore = %s, want now - backdate in whole seconds, %s", leaf.NotBefore, want)
			}
			if want := now.Add(tc.req.TTL).Truncate(time.Second); !leaf.NotAfter.Equal(want) {
				t.Errorf("NotAfter = %s, want now + TTL in whole seconds, %s", leaf.NotAfter, want)
			}
		})
	}
}
