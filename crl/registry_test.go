package crl_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/meshca/meshca/crl"
	"github.com/meshca/meshca/crl/internal/crltest"
)

const idA, idB = "spiffe://cluster.local/ns/shop/sa/cart", "spiffe://cluster.local/ns/shop/sa/pay"

func TestRevokedSerialIsInTheCRL(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	leaf := e.issue(t, idA, 24*time.Hour)
	e.clk.Add(1234 * time.Millisecond) // times in the CRL are whole seconds
	before := e.crlOf(t)
	if len(before.List.RevokedCertificateEntries) != 0 {
		t.Fatalf("a CRL before any revocation lists %d entries", len(before.List.RevokedCertificateEntries))
	}
	res, err := e.reg.Revoke(ctx, crl.RevokeRequest{Serial: leaf.SerialNumber, Reason: crl.KeyCompromise})
	if err != nil {
		t.Fatal(err)
	}
	if res.CA != crl.IDOf(e.pki.Inter) || res.Identity != idA || !res.NotAfter.Equal(leaf.NotAfter) {
		t.Errorf("entry %+v was not completed from the inventory", res.Entry)
	}
	c := e.crlOf(t)
	l, err := x509.ParseRevocationList(c.DER)
	if err != nil {
		t.Fatalf("the CRL does not parse: %v", err)
	}
	got, ok := listed(l, leaf.SerialNumber)
	if !ok {
		t.Fatalf("serial %s missing from the CRL", leaf.SerialNumber.Text(16))
	}
	if got.ReasonCode != int(crl.KeyCompromise) {
		t.Errorf("reason code %d, want %d", got.ReasonCode, crl.KeyCompromise)
	}
	if l.Number.Uint64() != res.CRLNumber || l.Number.Cmp(before.List.Number) <= 0 {
		t.Errorf("CRL number %s, want the revocation's %d, above %s", l.Number, res.CRLNumber, before.List.Number)
	}
	if !bytes.Equal(l.AuthorityKeyId, e.pki.Inter.SubjectKeyId) || !bytes.Equal(l.RawIssuer, e.pki.Inter.RawSubject) {
		t.Error("the CRL does not name the intermediate (issuer and authority key identifier)")
	}
	if err := l.CheckSignatureFrom(e.pki.Inter); err != nil {
		t.Errorf("the CRL is not signed by the intermediate: %v", err)
	}
	for _, tm := range []time.Time{l.ThisUpdate, l.NextUpdate, got.RevocationTime} {
		if tm.Nanosecond() != 0 || tm.Location() != time.UTC {
			t.Errorf("time %v is not whole seconds in UTC", tm)
		}
	}
	if d := l.NextUpdate.Sub(l.ThisUpdate); d != 24*time.Hour {
		t.Errorf("nextUpdate - thisUpdate = %s, want the default 24h", d)
	}
	if l.ThisUpdate.After(e.clk.Now()) || got.RevocationTime.After(l.ThisUpdate) {
		t.Errorf("thisUpdate %s is in the future, or the revocation time %s after it", l.ThisUpdate, got.RevocationTime)
	}
	again, err := e.reg.Revoke(ctx, crl.RevokeRequest{Certificate: leaf, Reason: crl.Superseded})
	if err != nil || !again.Existing || again.Reason != crl.KeyCompromise {
		t.Errorf("revoking again: %+v, %v; want the existing keyCompromise entry", again, err)
	}
	if n := e.crlOf(t).List.Number; n.Cmp(l.Number) != 0 {
		t.Errorf("revoking a revoked certificate moved the CRL number from %s to %s", l.Number, n)
	}
}

func TestCRLNumberIncreasesAcrossReopenAndClockSteps(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	first := e.crlOf(t).List.Number.Uint64()
	leaf := e.issue(t, idA, time.Hour)
	if _, err := e.reg.Revoke(ctx, crl.RevokeRequest{Certificate: leaf}); err != nil {
		t.Fatal(err)
	}
	second := e.crlOf(t).List.Number.Uint64()
	if second <= first {
		t.Fatalf("numbers %d then %d", first, second)
	}
	e.store.Close()
	e.clk.Add(-48 * time.Hour) // the restarted process has a clock two days behind
	s := openStore(t, e.path)
	e.reg = e.registry(t, s)
	leaf2 := e.issue(t, idB, time.Hour)
	if _, err := e.reg.Revoke(ctx, crl.RevokeRequest{Certificate: leaf2}); err != nil {
		t.Fatal(err)
	}
	c := e.crlOf(t)
	if third := c.List.Number.Uint64(); third <= second {
		t.Fatalf("after reopening, CRL number %d is not above %d", third, second)
	}
	if _, ok := listed(c.List, leaf.SerialNumber); !ok {
		t.Error("the revocation made before reopening is gone")
	}
}

func TestCRLIsReissuedAtHalfItsLifetime(t *testing.T) {
	e := newEnv(t, func(c *crl.RegistryConfig) { c.CRLLifetime = 10 * time.Hour })
	first := e.crlOf(t)
	e.clk.Add(4*time.Hour + 58*time.Minute)
	if n := e.crlOf(t).List.Number; n.Cmp(first.List.Number) != 0 {
		t.Fatalf("re-issued before half the lifetime: %s then %s", first.List.Number, n)
	}
	e.clk.Add(3 * time.Minute)
	next := e.crlOf(t)
	if next.List.Number.Cmp(first.List.Number) <= 0 || !next.List.ThisUpdate.After(first.List.ThisUpdate) {
		t.Fatalf("not re-issued after half the lifetime: number %s, thisUpdate %s", next.List.Number,
			next.List.ThisUpdate)
	}
}

func TestExpiredEntriesLeaveTheCRLAfterOneMoreCRL(t *testing.T) {
	e := newEnv(t, func(c *crl.RegistryConfig) { c.CRLLifetime = 4 * time.Hour })
	leaf := e.issue(t, idA, time.Hour)
	if _, err := e.reg.Revoke(context.Background(), crl.RevokeRequest{Certificate: leaf}); err != nil {
		t.Fatal(err)
	}
	e.clk.Add(time.Hour + 3*time.Hour) // expired, and a CRL issued after the expiry
	if _, ok := listed(e.crlOf(t).List, leaf.SerialNumber); !ok {
		t.Fatal("the entry left the CRL before a CRL issued after its certificate expired listed it (RFC 5280 §3.3)")
	}
	e.clk.Add(4 * time.Hour)
	if _, ok := listed(e.crlOf(t).List, leaf.SerialNumber); ok {
		t.Fatal("the entry of a long-expired certificate is still listed")
	}
	e.clk.Add(6 * time.Hour)
	if err := e.reg.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(e.reg.Entries()); n != 0 {
		t.Fatalf("%d entries kept in the store after 2 lifetimes past expiry", n)
	}
}

func TestRevokeIdentityFindsEveryUnexpiredSerial(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a1, a2 := e.issue(t, idA, 24*time.Hour), e.issue(t, idA, 12*time.Hour)
	expired := e.issue(t, idA, time.Minute)
	b := e.issue(t, idB, 24*time.Hour)
	if err := e.reg.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	a3 := e.issue(t, idA, 24*time.Hour) // still buffered: RevokeIdentity must see it
	e.clk.Add(2 * time.Minute)
	res, err := e.reg.RevokeIdentity(ctx, crl.IdentityRevocation{Identity: idA, Reason: crl.KeyCompromise,
		QuarantineUntil: e.clk.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	got := serials(res.Revoked)
	for _, c := range []*x509.Certificate{a1, a2, a3} {
		if !got[c.SerialNumber.Text(16)] {
			t.Errorf("serial %s of %s not revoked", c.SerialNumber.Text(16), idA)
		}
	}
	if got[expired.SerialNumber.Text(16)] || got[b.SerialNumber.Text(16)] || len(got) != 3 {
		t.Errorf("revoked %v: want only the three unexpired certificates of %s", got, idA)
	}
	if !res.Complete {
		t.Error("reported incomplete with nothing dropped")
	}
	l := e.crlOf(t).List
	for _, c := range []*x509.Certificate{a1, a2, a3} {
		if _, ok := listed(l, c.SerialNumber); !ok {
			t.Errorf("serial %s missing from the CRL", c.SerialNumber.Text(16))
		}
	}
	if until, ok := e.reg.Quarantined(idA, e.clk.Now()); !ok || !until.After(e.clk.Now()) {
		t.Errorf("Quarantined(%s) = %v, %v after a revocation with quarantine", idA, until, ok)
	}
	if _, ok := e.reg.Quarantined(idA, e.clk.Now().Add(time.Hour+time.Second)); ok {
		t.Error("still quarantined after the quarantine ended")
	}
	if _, ok := e.reg.Quarantined(idB, e.clk.Now()); ok {
		t.Errorf("%s is quarantined", idB)
	}
}

func TestRevokeIdentityCatchesRecordsThatArriveLate(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	// Another replica issued this certificate before the revocation and flushes its record afterwards.
	early := e.pki.Leaf(t, idA, 24*time.Hour)
	issuedAt := e.clk.Now()
	e.clk.Add(time.Second)
	if _, err := e.reg.RevokeIdentity(ctx, crl.IdentityRevocation{Identity: idA}); err != nil {
		t.Fatal(err)
	}
	e.clk.Add(time.Second)
	late := e.issue(t, idA, 24*time.Hour) // issued after the revocation: stays valid
	if err := e.reg.Record(crl.Issuance{Serial: early.SerialNumber, Identity: idA, CA: crl.IDOf(e.pki.Inter),
		NotAfter: early.NotAfter, IssuedAt: issuedAt}); err != nil {
		t.Fatal(err)
	}
	if err := e.reg.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	l := e.crlOf(t).List
	if _, ok := listed(l, early.SerialNumber); !ok {
		t.Error("a certificate issued before the revocation and recorded after it is not revoked")
	}
	if _, ok := listed(l, late.SerialNumber); ok {
		t.Error("a certificate issued after the revocation is revoked")
	}
}

func TestRevokeIdentityReportsAnIncompleteInventory(t *testing.T) {
	e := newEnv(t, func(c *crl.RegistryConfig) { c.MaxInventory = 2 })
	for range 3 {
		e.issue(t, idA, time.Hour)
	}
	res, err := e.reg.RevokeIdentity(context.Background(), crl.IdentityRevocation{Identity: idA})
	if err != nil {
		t.Fatal(err)
	}
	if res.Complete || len(res.Revoked) != 2 {
		t.Fatalf("revoked %d, complete %v; want 2 and incomplete (one record dropped)", len(res.Revoked), res.Complete)
	}
}

func TestQuarantineWithoutRevocation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.reg.Quarantine(ctx, idA, e.clk.Now().Add(30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.reg.Quarantined(idA, e.clk.Now()); !ok {
		t.Fatal("not quarantined")
	}
	if err := e.reg.Quarantine(ctx, idA, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.reg.Quarantined(idA, e.clk.Now()); ok {
		t.Fatal("still quarantined after lifting")
	}
}

func TestRevokeRefusesBadRequests(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ca := crl.IDOf(e.pki.Inter)
	for _, tc := range []struct {
		name string
		req  crl.RevokeRequest
		want error
	}{
		{"a serial not in the inventory needs its CA", crl.RevokeRequest{Serial: big.NewInt(77)}, crl.ErrUnknownIssuer},
		{"a missing serial is refused", crl.RevokeRequest{CA: ca}, crl.ErrInvalidRequest},
		{"a zero serial is refused", crl.RevokeRequest{Serial: big.NewInt(0), CA: ca}, crl.ErrInvalidRequest},
		{"a 21-octet serial is refused", crl.RevokeRequest{Serial: new(big.Int).Lsh(big.NewInt(1), 161), CA: ca},
			crl.ErrInvalidRequest},
		{"removeFromCRL is refused", crl.RevokeRequest{Serial: big.NewInt(7), CA: ca, Reason: 8}, crl.ErrInvalidReason},
		{"a malformed CA id is refused", crl.RevokeRequest{Serial: big.NewInt(7), CA: "ski:xyz"},
			crl.ErrInvalidRequest},
		{"an overlong identity is refused", crl.RevokeRequest{Serial: big.NewInt(7), CA: ca,
			Identity: "spiffe://x/" + strings.Repeat("a", crl.MaxIdentityLen)}, crl.ErrInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.reg.Revoke(ctx, tc.req); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	err := e.reg.Record(crl.Issuance{Serial: big.NewInt(5), Identity: "", CA: ca})
	if !errors.Is(err, crl.ErrInvalidRequest) {
		t.Errorf("Record without identity: %v, want ErrInvalidRequest", err)
	}
	if len(e.reg.Entries()) != 0 {
		t.Error("a refused request left an entry")
	}
}

func TestRevokeBySerialWithItsCA(t *testing.T) {
	e := newEnv(t, func(c *crl.RegistryConfig) { c.UnknownExpiry = 48 * time.Hour })
	res, err := e.reg.Revoke(context.Background(), crl.RevokeRequest{Serial: big.NewInt(4242),
		CA: crl.IDOf(e.pki.Inter), Reason: crl.CessationOfOperation})
	if err != nil {
		t.Fatal(err)
	}
	if want := e.clk.Now().Add(48 * time.Hour).Truncate(time.Second); !res.NotAfter.Equal(want) {
		t.Errorf("NotAfter %s for an unknown expiry, want now + UnknownExpiry = %s", res.NotAfter, want)
	}
	if _, ok := listed(e.crlOf(t).List, big.NewInt(4242)); !ok {
		t.Error("serial missing from the CRL")
	}
}

func TestIssueChecksWhatTheSignerReturns(t *testing.T) {
	e := newEnv(t)
	wrong := crl.KeySigner{CA: e.pki.Inter, Key: crltest.Key(t)} // signs under the right name with another key
	if _, err := e.reg.Issue(context.Background(), e.pki.Inter, wrong); !errors.Is(err, crl.ErrBadCRL) {
		t.Fatalf("a CRL signed by another key: err = %v, want ErrBadCRL", err)
	}
}
