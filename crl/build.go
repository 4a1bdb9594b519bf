package crl

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"
)

// Signer signs a CRL that meshca built with the key of one CA. backends.CRLSigner (the file backend) has this
// method; KeySigner adapts a certificate and key.
type Signer interface {
	// SignCRL signs rl and returns the DER CRL. The issuer name and authority key identifier come from the
	// CA certificate.
	SignCRL(ctx context.Context, rl *x509.RevocationList) ([]byte, error)
}

// Source returns the DER CRL of a backend that owns revocation (backends.CRLSource: Vault, step-ca).
type Source interface {
	CRL(ctx context.Context) ([]byte, error)
}

// KeySigner signs CRLs with a CA certificate and its private key held in memory.
type KeySigner struct {
	CA  *x509.Certificate
	Key crypto.Signer
}

// SignCRL signs rl with k.Key as k.CA.
func (k KeySigner) SignCRL(_ context.Context, rl *x509.RevocationList) ([]byte, error) {
	der, err := x509.CreateRevocationList(rand.Reader, rl, k.CA, k.Key)
	if err != nil {
		return nil, fmt.Errorf("crl: signing a CRL: %w", err)
	}
	return der, nil
}

// CRL is the current CRL of one CA.
type CRL struct {
	// CA is the certificate of the CA that signed it.
	CA *x509.Certificate
	// ID is IDOf(CA).
	ID CAID
	// DER is the CRL as signed; List is DER parsed.
	DER  []byte
	List *x509.RevocationList
	// Origin says where it comes from: "meshca" (built and signed here), "backend <name>" or "file <path>".
	Origin string
}

// Issue returns the current CRL of ca, which meshca signs for with s: RFC 5280 v2, with the CA's authority key
// identifier, a CRL number, thisUpdate and nextUpdate, and one entry per certificate of ca revoked and not long
// expired, with its reason code. When the CRL recorded in the state is older than RefreshAfter or no longer
// lists exactly the current entries, a new one is recorded first (a new number, taken in the store, so it
// increases across restarts and replicas). Every replica builds the same CRL from the same record; signing
// happens once per record and replica. The signed CRL is parsed and checked against ca before it is returned.
func (r *Registry) Issue(ctx context.Context, ca *x509.Certificate, s Signer) (*CRL, error) {
	id := IDOf(ca)
	st := r.snap.Load().state
	now := seconds(r.cfg.Clock())
	if !r.current(st, id, now) {
		var err error
		refresh := func(s *State, now time.Time) (bool, error) { return r.refreshCRL(s, id, now), nil }
		if st, err = r.update(ctx, refresh); err != nil {
			return nil, fmt.Errorf("crl: recording a new CRL for %s: %w", id, err)
		}
	}
	info := st.CRLs[id]
	r.cacheMu.Lock()
	c := r.cache[id]
	r.cacheMu.Unlock()
	if c != nil && c.List.Number.Uint64() == info.Number && bytes.Equal(c.CA.Raw, ca.Raw) {
		return c, nil
	}
	tmpl := &x509.RevocationList{
		Number:     new(big.Int).SetUint64(info.Number),
		ThisUpdate: info.ThisUpdate,
		NextUpdate: info.NextUpdate,
	}
	for _, e := range r.listed(st, id, info.ThisUpdate) {
		// thisUpdate is backdated; a revocation time after it would be one the CRL's issuer had not seen yet.
		at := e.RevokedAt
		if at.After(info.ThisUpdate) {
			at = info.ThisUpdate
		}
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber: e.Serial, RevocationTime: at, ReasonCode: int(e.Reason)})
	}
	der, err := s.SignCRL(ctx, tmpl)
	if err != nil {
		return nil, fmt.Errorf("crl: signing the CRL of %s: %w", ca.Subject, err)
	}
	list, err := x509.ParseRevocationList(der)
	switch {
	case err != nil:
		return nil, fmt.Errorf("crl: %w: the signer of %s returned an unparsable CRL: %v", ErrBadCRL, ca.Subject, err)
	case !Matches(list, ca):
		return nil, fmt.Errorf("crl: %w: the CRL signed for %s is not signed by it (did the CA change meanwhile?)",
			ErrBadCRL, ca.Subject)
	case list.Number == nil || list.Number.Cmp(tmpl.Number) != 0 ||
		len(list.RevokedCertificateEntries) != len(tmpl.RevokedCertificateEntries):
		return nil, fmt.Errorf("crl: %w: the signer of %s changed the CRL's content", ErrBadCRL, ca.Subject)
	}
	c = &CRL{CA: ca, ID: id, DER: der, List: list, Origin: "meshca"}
	r.cacheMu.Lock()
	r.cache[id] = c
	r.cacheMu.Unlock()
	return c, nil
}

// current reports whether the CRL recorded for id in st may still be served at now.
func (r *Registry) current(st *State, id CAID, now time.Time) bool {
	info, ok := st.CRLs[id]
	return ok && !now.Before(info.ThisUpdate) && now.Before(info.ThisUpdate.Add(r.cfg.Backdate+r.cfg.RefreshAfter)) &&
		digest(r.listed(st, id, info.ThisUpdate)) == info.Digest
}

// refreshCRL records a new CRL for id in s unless the recorded one is current. The number is the larger of the
// last number plus one and the Unix time, so a state lost and started afresh still numbers upwards.
func (r *Registry) refreshCRL(s *State, id CAID, now time.Time) bool {
	if r.current(s, id, now) {
		return false
	}
	this := now.Add(-r.cfg.Backdate)
	s.LastNumber = max(s.LastNumber+1, uint64(max(now.Unix(), 0)))
	if s.CRLs == nil {
		s.CRLs = map[CAID]CRLInfo{}
	}
	s.CRLs[id] = CRLInfo{Number: s.LastNumber, ThisUpdate: this, NextUpdate: this.Add(r.cfg.CRLLifetime),
		Digest: digest(r.listed(s, id, this))}
	return true
}

// listed returns the entries of id that a CRL with thisUpdate lists: all but those that expired more than a CRL
// lifetime before it, so each appears on at least one CRL issued after its certificate expired (RFC 5280 §3.3).
func (r *Registry) listed(s *State, id CAID, thisUpdate time.Time) []Entry {
	horizon := thisUpdate.Add(-r.cfg.CRLLifetime)
	var out []Entry
	for _, e := range s.Revoked {
		if e.CA == id && e.NotAfter.After(horizon) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b Entry) int { return a.Serial.Cmp(b.Serial) })
	return out
}

func digest(es []Entry) string {
	h := sha256.New()
	for _, e := range es {
		fmt.Fprintf(h, "%s %d %d\n", e.Serial.Text(16), e.RevokedAt.Unix(), e.Reason)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Matches reports whether list is a CRL of ca: issued under ca's subject, signed by ca's key and, when both
// carry key identifiers, naming ca's.
func Matches(list *x509.RevocationList, ca *x509.Certificate) bool {
	if !bytes.Equal(list.RawIssuer, ca.RawSubject) {
		return false
	}
	if len(list.AuthorityKeyId) > 0 && len(ca.SubjectKeyId) > 0 && !bytes.Equal(list.AuthorityKeyId, ca.SubjectKeyId) {
		return false
	}
	return list.CheckSignatureFrom(ca) == nil
}

// Entries returns the current revocations, ordered by CA and serial.
func (r *Registry) Entries() []Entry {
	es := sortedEntries(r.snap.Load().state.Revoked)
	for i := range es {
		es[i].Serial = new(big.Int).Set(es[i].Serial)
	}
	return es
}

// Issued returns the inventory records of identity, soonest expiry first.
func (r *Registry) Issued(identity string) []Issuance {
	s := r.snap.Load()
	var out []Issuance
	for _, i := range s.issued[identity] {
		rec := s.state.Issued[i]
		rec.Serial = new(big.Int).Set(rec.Serial)
		out = append(out, rec)
	}
	slices.SortFunc(out, func(a, b Issuance) int {
		return cmp.Or(a.NotAfter.Compare(b.NotAfter), strings.Compare(string(a.CA), string(b.CA)))
	})
	return out
}
