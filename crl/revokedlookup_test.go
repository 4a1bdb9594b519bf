package crl_test

import (
	"context"
	"math/big"
	"testing"
	"time"

	"github.com/meshca/meshca/crl"
)

// TestRevokedLooksUpByCAAndSerial: Revoked finds a revoked certificate by its issuing CA and serial, and nothing
// for the same serial under another CA, for a serial not revoked, or for no serial.
func TestRevokedLooksUpByCAAndSerial(t *testing.T) {
	e := newEnv(t)
	leaf := e.issue(t, idA, time.Hour)
	kept := e.issue(t, idB, time.Hour)
	req := crl.RevokeRequest{Serial: leaf.SerialNumber, Reason: crl.Superseded}
	if _, err := e.reg.Revoke(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	ca := crl.IDOf(e.pki.Inter)
	got, ok := e.reg.Revoked(ca, new(big.Int).Set(leaf.SerialNumber))
	if !ok || got.Serial.Cmp(leaf.SerialNumber) != 0 || got.CA != ca || got.Reason != crl.Superseded ||
		got.Identity != idA {
		t.Fatalf("Revoked(the revoked leaf) = %+v, %t", got, ok)
	}
	got.Serial.SetInt64(1) // the caller's copy
	if again, _ := e.reg.Revoked(ca, leaf.SerialNumber); again.Serial.Cmp(leaf.SerialNumber) != 0 {
		t.Fatal("changing the returned serial changed the registry's entry")
	}
	for name, tc := range map[string]struct {
		ca     crl.CAID
		serial *big.Int
	}{
		"the serial under another CA":  {crl.IDOf(e.pki.Root), leaf.SerialNumber},
		"a serial that is not revoked": {ca, kept.SerialNumber},
		"no serial":                    {ca, nil},
	} {
		if got, ok := e.reg.Revoked(tc.ca, tc.serial); ok {
			t.Errorf("Revoked(%s) = %+v, want not revoked", name, got)
		}
	}
}
