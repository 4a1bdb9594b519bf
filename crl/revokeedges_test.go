package crl_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/meshca/meshca/crl"
)

// A certificate handed to Revoke that the inventory does not hold (issued before meshca kept one, or by
// another replica whose records were dropped) still gives its identity, from its first URI SAN.
func TestRevokeTakesTheIdentityFromACertificateNotInTheInventory(t *testing.T) {
	e := newEnv(t)
	leaf := e.pki.Leaf(t, idA, time.Hour) // not recorded
	res, err := e.reg.Revoke(context.Background(), crl.RevokeRequest{Certificate: leaf, Reason: crl.KeyCompromise})
	if err != nil {
		t.Fatal(err)
	}
	if res.Identity != idA || res.CA != crl.IDOf(e.pki.Inter) {
		t.Fatalf("revocation of %q under %q, want %q under the intermediate", res.Identity, res.CA, idA)
	}
}

// A revocation by serial that names the CA still completes the entry from that CA's inventory record: its
// expiry (not RegistryConfig.UnknownExpiry) and its identity.
func TestRevokeNamingTheCAUsesItsInventoryRecord(t *testing.T) {
	e := newEnv(t, func(c *crl.RegistryConfig) { c.UnknownExpiry = 30 * 24 * time.Hour })
	leaf := e.issue(t, idA, time.Hour)
	if err := e.reg.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	res, err := e.reg.Revoke(context.Background(), crl.RevokeRequest{Serial: leaf.SerialNumber,
		CA: crl.IDOf(e.pki.Inter), Reason: crl.Superseded})
	if err != nil {
		t.Fatal(err)
	}
	if !res.NotAfter.Equal(leaf.NotAfter) || res.Identity != idA {
		t.Fatalf("entry expires %s for %q, want the record's %s and %q", res.NotAfter, res.Identity, leaf.NotAfter, idA)
	}
}

// Setting a quarantine is an operator's action on an identity: it is logged, with the identity.
func TestQuarantineIsLogged(t *testing.T) {
	var buf bytes.Buffer
	e := newEnv(t, func(c *crl.RegistryConfig) { c.Logger = slog.New(slog.NewTextHandler(&buf, nil)) })
	if err := e.reg.Quarantine(context.Background(), idA, e.clk.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if out := buf.String(); !strings.Contains(out, "identity quarantine set") || !strings.Contains(out, idA) {
		t.Fatalf("log after a quarantine:\n%s", out)
	}
}

// A store update that finds nothing to add, revoke or prune writes no new revision: replicas and the CRL
// publisher are not woken for nothing. The state holds one of everything prune looks at (inventory,
// revocations, quarantines, identity marks), none of it due.
func TestAnUpdateWithNothingToPruneWritesNothing(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	leaf := e.issue(t, idA, time.Hour)
	if _, err := e.reg.Revoke(ctx, crl.RevokeRequest{Certificate: leaf}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.RevokeIdentity(ctx, crl.IdentityRevocation{Identity: idB,
		QuarantineUntil: e.clk.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	changed := e.reg.Changed()
	if err := e.reg.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
		t.Fatalf("a flush with nothing to do wrote a new revision (%d entries)", len(e.reg.Entries()))
	default:
	}
}

// A revoked certificate's entry stays in the store until two CRL lifetimes and the backdate after it expired
// (so that CRLs issued after the expiry list it, RFC 5280 §3.3, however far back they are dated), and goes at
// the next update after that.
func TestARevocationIsKeptTwoCRLLifetimesAndTheBackdatePastExpiry(t *testing.T) {
	const lifetime, backdate = 4 * time.Hour, 30 * time.Minute
	e := newEnv(t, func(c *crl.RegistryConfig) { c.CRLLifetime, c.Backdate = lifetime, backdate })
	ctx := context.Background()
	res, err := e.reg.Revoke(ctx, crl.RevokeRequest{Certificate: e.issue(t, idA, time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	last := res.NotAfter.Add(2*lifetime + backdate)
	e.clk.Add(last.Sub(e.clk.Now()))
	if err := e.reg.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(e.reg.Entries()); n != 1 {
		t.Fatalf("%d entries at expiry + 2 CRL lifetimes + backdate, want the revocation still kept", n)
	}
	e.clk.Add(time.Second)
	if err := e.reg.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(e.reg.Entries()); n != 0 {
		t.Fatalf("%d entries a second later, want none", n)
	}
}
