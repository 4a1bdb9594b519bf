package crl_test

import (
	"context"
	"crypto/x509"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/meshca/meshca/crl"
	"github.com/meshca/meshca/crl/internal/crltest"
)

// tamperingSigner signs with the CA's key, then hands back what tamper makes of the template or the DER.
type tamperingSigner struct {
	good   crl.KeySigner
	before func(*x509.RevocationList)
	after  func([]byte) ([]byte, error)
}

func (s tamperingSigner) SignCRL(ctx context.Context, rl *x509.RevocationList) ([]byte, error) {
	c := *rl
	c.RevokedCertificateEntries = append([]x509.RevocationListEntry(nil), rl.RevokedCertificateEntries...)
	if s.before != nil {
		s.before(&c)
	}
	der, err := s.good.SignCRL(ctx, &c)
	if err != nil || s.after == nil {
		return der, err
	}
	return s.after(der)
}

var errSignerDown = errors.New("signer down")

func TestIssueRefusesACRLTheSignerChanged(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, id := range []string{idA, idB} {
		leaf := e.issue(t, id, 24*time.Hour)
		req := crl.RevokeRequest{Serial: leaf.SerialNumber, Reason: crl.KeyCompromise}
		if _, err := e.reg.Revoke(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	other := crltest.New(t, t.Name()) // the same names, other keys
	forged := *other.Inter            // and, here, the CA's key identifier
	forged.SubjectKeyId = e.pki.Inter.SubjectKeyId
	for _, tc := range []struct {
		name string
		s    tamperingSigner
		want error
	}{
		{"a signer's error is returned", tamperingSigner{after: func([]byte) ([]byte, error) {
			return nil, errSignerDown
		}}, errSignerDown},
		{"an answer that is not a CRL is refused", tamperingSigner{after: func([]byte) ([]byte, error) {
			return []byte("not a CRL"), nil
		}}, crl.ErrBadCRL},
		{"a CRL signed by another key under the CA's name is refused",
			tamperingSigner{good: crl.KeySigner{CA: other.Inter, Key: other.InterKey}}, crl.ErrBadCRL},
		{"a CRL naming the CA's key identifier but signed by another key is refused",
			tamperingSigner{good: crl.KeySigner{CA: &forged, Key: other.InterKey}}, crl.ErrBadCRL},
		{"a CRL with another number is refused", tamperingSigner{before: func(l *x509.RevocationList) {
			l.Number = new(big.Int).Add(l.Number, big.NewInt(1))
		}}, crl.ErrBadCRL},
		{"a CRL with an entry left out is refused", tamperingSigner{before: func(l *x509.RevocationList) {
			l.RevokedCertificateEntries = l.RevokedCertificateEntries[1:]
		}}, crl.ErrBadCRL},
		{"a CRL with an entry added is refused", tamperingSigner{before: func(l *x509.RevocationList) {
			l.RevokedCertificateEntries = append(l.RevokedCertificateEntries,
				x509.RevocationListEntry{SerialNumber: big.NewInt(7), RevocationTime: l.ThisUpdate})
		}}, crl.ErrBadCRL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.s.good.CA == nil {
				tc.s.good = e.sign
			}
			c, err := e.reg.Issue(ctx, e.pki.Inter, tc.s)
			if !errors.Is(err, tc.want) || c != nil {
				t.Fatalf("Issue = %v, %v; want %v", c, err, tc.want)
			}
		})
	}
	c, err := e.reg.Issue(ctx, e.pki.Inter, e.sign)
	if err != nil || len(c.List.RevokedCertificateEntries) != 2 {
		t.Fatalf("after the refusals, the CA's own signer: %v", err)
	}
}
