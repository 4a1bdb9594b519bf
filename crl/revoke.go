package crl

import (
	"context"
	"crypto/x509"
	"fmt"
	"math/big"
	"slices"
	"time"
)

// RevokeRequest names one certificate to revoke.
type RevokeRequest struct {
	// Serial is the certificate's serial number; taken from Certificate when that is set.
	Serial *big.Int
	// CA is the issuing CA. It may be left empty when the serial is in the inventory (under one CA only) or
	// Certificate is set.
	CA CAID
	// Certificate, when the caller has it, gives the serial, the CA (authority key identifier), NotAfter and
	// Identity (first URI SAN).
	Certificate *x509.Certificate
	Reason      Reason
	// NotAfter is the certificate's expiry, when neither the inventory nor Certificate gives it. Without it the
	// entry is kept for RegistryConfig.UnknownExpiry.
	NotAfter time.Time
	// Identity is the certificate's SPIFFE ID, when known.
	Identity string
}

// Revocation is the outcome of revoking one certificate.
type Revocation struct {
	Entry
	// CRLNumber is the number of the first CRL of Entry.CA that lists the entry.
	CRLNumber uint64
	// Existing reports that the certificate was already revoked: Entry is the earlier entry, unchanged.
	Existing bool
}

// Revoke revokes one certificate. Revoking a revoked certificate changes nothing and reports Existing. The
// next CRL of its CA is due at once: the Publisher picks it up through Changed.
func (r *Registry) Revoke(ctx context.Context, req RevokeRequest) (Revocation, error) {
	if !req.Reason.Valid() {
		return Revocation{}, fmt.Errorf("crl: %w: %d", ErrInvalidReason, int(req.Reason))
	}
	if c := req.Certificate; c != nil {
		req.Serial = c.SerialNumber
		if req.CA == "" {
			req.CA = IssuerOf(c)
		}
		req.NotAfter = c.NotAfter
		if req.Identity == "" && len(c.URIs) > 0 {
			req.Identity = c.URIs[0].String()
		}
	}
	if err := checkSerial(req.Serial); err != nil {
		return Revocation{}, fmt.Errorf("crl: %w: %v", ErrInvalidRequest, err)
	}
	if req.CA != "" && !req.CA.Valid() {
		return Revocation{}, fmt.Errorf("crl: %w: CA id %.80q", ErrInvalidRequest, req.CA)
	}
	if req.Identity != "" {
		if err := checkIdentity(req.Identity); err != nil {
			return Revocation{}, fmt.Errorf("crl: %w: %v", ErrInvalidRequest, err)
		}
	}
	var res Revocation
	_, err := r.update(ctx, func(s *State, now time.Time) (bool, error) {
		e := Entry{Serial: req.Serial, CA: req.CA, Reason: req.Reason, RevokedAt: now,
			NotAfter: seconds(req.NotAfter), Identity: req.Identity}
		if err := r.resolve(s, &e, now); err != nil {
			return false, err
		}
		same := func(x Entry) bool { return x.CA == e.CA && x.Serial.Cmp(e.Serial) == 0 }
		if i := slices.IndexFunc(s.Revoked, same); i >= 0 {
			res = Revocation{Entry: s.Revoked[i], CRLNumber: s.CRLs[e.CA].Number, Existing: true}
			return false, nil
		}
		s.Revoked = append(s.Revoked, e)
		r.refreshCRL(s, e.CA, now)
		res = Revocation{Entry: e, CRLNumber: s.CRLs[e.CA].Number}
		return true, nil
	})
	if err != nil {
		return Revocation{}, err
	}
	if !res.Existing {
		r.m.revocations.WithLabelValues(res.Reason.String()).Inc()
		r.cfg.Logger.Info("certificate revoked", "serial", res.Serial.Text(16), "ca", res.CA,
			"identity", bounded(res.Identity), "reason", res.Reason.String(), "crl_number", res.CRLNumber)
	}
	return res, nil
}

// resolve completes e from the inventory: its CA when not given, its NotAfter and identity when unknown.
func (r *Registry) resolve(s *State, e *Entry, now time.Time) error {
	var found *Issuance
	for i := range s.Issued {
		rec := &s.Issued[i]
		if rec.Serial.Cmp(e.Serial) != 0 || (e.CA != "" && rec.CA != e.CA) {
			continue
		}
		if found != nil {
			return fmt.Errorf("crl: %w: serial %s was issued by several CAs; name the CA", ErrUnknownIssuer,
				e.Serial.Text(16))
		}
		found = rec
	}
	if found != nil {
		e.CA = found.CA
		if e.NotAfter.IsZero() {
			e.NotAfter = found.NotAfter
		}
		if e.Identity == "" {
			e.Identity = found.Identity
		}
	}
	if e.CA == "" {
		return fmt.Errorf("crl: %w: serial %s is not in the inventory; name the issuing CA", ErrUnknownIssuer,
			e.Serial.Text(16))
	}
	if e.NotAfter.IsZero() {
		e.NotAfter = now.Add(r.cfg.UnknownExpiry)
	}
	return nil
}

// IdentityRevocation revokes every unexpired certificate of one identity.
type IdentityRevocation struct {
	// Identity is the SPIFFE ID, e.g. "spiffe://cluster.local/ns/shop/sa/cart".
	Identity string
	Reason   Reason
	// QuarantineUntil, when in the future, also refuses the identity new certificates until then.
	QuarantineUntil time.Time
}

// IdentityResult is the outcome of a revocation by identity.
type IdentityResult struct {
	// Revoked are the identity's unexpired certificates in the inventory, each now revoked (Existing for
	// those that were already).
	Revoked []Revocation
	// Complete is false when the inventory dropped records (it or its buffer was full) that may still be
	// valid: some certificates of the identity may then be missing from Revoked.
	Complete bool
}

// RevokeIdentity revokes every unexpired certificate the inventory holds for req.Identity, this replica's
// buffered issuances included. Records of earlier issuances that other replicas write later are revoked as
// they arrive (for RegistryConfig.MarkRetention). To stop new certificates as well, set QuarantineUntil.
func (r *Registry) RevokeIdentity(ctx context.Context, req IdentityRevocation) (IdentityResult, error) {
	if err := checkIdentity(req.Identity); err != nil {
		return IdentityResult{}, fmt.Errorf("crl: %w: %v", ErrInvalidRequest, err)
	}
	if !req.Reason.Valid() {
		return IdentityResult{}, fmt.Errorf("crl: %w: %d", ErrInvalidReason, int(req.Reason))
	}
	var res IdentityResult
	_, err := r.update(ctx, func(s *State, now time.Time) (bool, error) {
		res = IdentityResult{Complete: !s.InventoryGap.After(now)}
		revoked := map[string]int{}
		for i, e := range s.Revoked {
			revoked[entryKey(e.CA, e.Serial)] = i
		}
		touched := map[CAID]bool{}
		for _, rec := range s.Issued {
			if rec.Identity != req.Identity || !rec.NotAfter.After(now) {
				continue
			}
			if i, ok := revoked[entryKey(rec.CA, rec.Serial)]; ok {
				res.Revoked = append(res.Revoked, Revocation{Entry: s.Revoked[i], Existing: true})
				continue
			}
			e := Entry{Serial: rec.Serial, CA: rec.CA, Reason: req.Reason, RevokedAt: now, NotAfter: rec.NotAfter,
				Identity: rec.Identity}
			s.Revoked = append(s.Revoked, e)
			touched[e.CA] = true
			res.Revoked = append(res.Revoked, Revocation{Entry: e})
		}
		for ca := range touched {
			r.refreshCRL(s, ca, now)
		}
		for i := range res.Revoked {
			res.Revoked[i].CRLNumber = s.CRLs[res.Revoked[i].CA].Number
		}
		s.Marks = append(s.Marks, Mark{Identity: req.Identity, Before: now, Reason: req.Reason,
			Expires: now.Add(r.cfg.MarkRetention)})
		if until := ceilSeconds(req.QuarantineUntil); until.After(now) {
			setQuarantine(s, req.Identity, until)
		}
		return true, nil
	})
	if err != nil {
		return IdentityResult{}, err
	}
	for _, rv := range res.Revoked {
		if !rv.Existing {
			r.m.revocations.WithLabelValues(rv.Reason.String()).Inc()
		}
	}
	r.cfg.Logger.Info("identity revoked", "identity", bounded(req.Identity), "certificates", len(res.Revoked),
		"reason", req.Reason.String(), "complete", res.Complete, "quarantine_until", req.QuarantineUntil)
	return res, nil
}

// Quarantine refuses identity new certificates until the given time; a time not in the future lifts it.
func (r *Registry) Quarantine(ctx context.Context, identity string, until time.Time) error {
	if err := checkIdentity(identity); err != nil {
		return fmt.Errorf("crl: %w: %v", ErrInvalidRequest, err)
	}
	until = ceilSeconds(until)
	_, err := r.update(ctx, func(s *State, now time.Time) (bool, error) {
		if until.After(now) {
			if s.Quarantine[identity].Equal(until) {
				return false, nil
			}
			setQuarantine(s, identity, until)
			return true, nil
		}
		if _, ok := s.Quarantine[identity]; !ok {
			return false, nil
		}
		delete(s.Quarantine, identity)
		return true, nil
	})
	if err == nil {
		r.cfg.Logger.Info("identity quarantine set", "identity", bounded(identity), "until", until)
	}
	return err
}

func setQuarantine(s *State, identity string, until time.Time) {
	if s.Quarantine == nil {
		s.Quarantine = map[string]time.Time{}
	}
	s.Quarantine[identity] = until
}

func ceilSeconds(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.Add(time.Second - 1).Truncate(time.Second).UTC()
}

// merge adds buffered issuances to the inventory (revoking those a mark catches) and caps the inventory. It
// returns the entries it added and whether s changed.
func (r *Registry) merge(s *State, pending []Issuance, gap time.Time, now time.Time) ([]Entry, bool) {
	changed := false
	if gap.After(s.InventoryGap) {
		s.InventoryGap, changed = gap, true
	}
	if len(pending) == 0 {
		return nil, changed
	}
	have := make(map[string]bool, len(s.Issued))
	for _, rec := range s.Issued {
		have[entryKey(rec.CA, rec.Serial)] = true
	}
	revoked := make(map[string]bool, len(s.Revoked))
	for _, e := range s.Revoked {
		revoked[entryKey(e.CA, e.Serial)] = true
	}
	var added []Entry
	var fresh []Issuance
	touched := map[CAID]bool{}
	for _, rec := range pending {
		k := entryKey(rec.CA, rec.Serial)
		if !rec.NotAfter.After(now) || have[k] {
			continue
		}
		have[k] = true
		rec.Serial = new(big.Int).Set(rec.Serial)
		fresh = append(fresh, rec)
		changed = true
		for _, m := range s.Marks {
			if m.Identity == rec.Identity && !rec.IssuedAt.After(m.Before) && !revoked[k] {
				e := Entry{Serial: rec.Serial, CA: rec.CA, Reason: m.Reason, RevokedAt: now, NotAfter: rec.NotAfter,
					Identity: rec.Identity}
				s.Revoked = append(s.Revoked, e)
				revoked[k], touched[rec.CA] = true, true
				added = append(added, e)
			}
		}
	}
	for ca := range touched {
		r.refreshCRL(s, ca, now)
	}
	s.Issued = addSorted(s.Issued, fresh)
	if over := len(s.Issued) - r.cfg.MaxInventory; over > 0 { // soonest expiry first: drop those
		for _, rec := range s.Issued[:over] {
			s.InventoryGap = later(s.InventoryGap, rec.NotAfter)
		}
		s.Issued = slices.Delete(s.Issued, 0, over)
		r.m.dropped.Add(float64(over))
	}
	return added, changed
}

// prune drops what expired: inventory records past notAfter, entries long past it (after they appeared on a
// CRL issued after their expiry, RFC 5280 §3.3), lifted quarantines and old marks. It reports a change.
func (r *Registry) prune(s *State, now time.Time) bool {
	n := len(s.Issued) + len(s.Revoked) + len(s.Quarantine) + len(s.Marks)
	s.Issued = slices.DeleteFunc(s.Issued, func(rec Issuance) bool { return !rec.NotAfter.After(now) })
	horizon := now.Add(-2*r.cfg.CRLLifetime - r.cfg.Backdate)
	s.Revoked = slices.DeleteFunc(s.Revoked, func(e Entry) bool { return e.NotAfter.Before(horizon) })
	for id, until := range s.Quarantine {
		if !until.After(now) {
			delete(s.Quarantine, id)
		}
	}
	s.Marks = slices.DeleteFunc(s.Marks, func(m Mark) bool { return !m.Expires.After(now) })
	changed := n != len(s.Issued)+len(s.Revoked)+len(s.Quarantine)+len(s.Marks)
	if !s.InventoryGap.IsZero() && !s.InventoryGap.After(now) {
		s.InventoryGap, changed = time.Time{}, true
	}
	return changed
}

// addSorted returns the inventory with fresh added, in compareIssuance order: the fresh records are sorted
// and merged in one pass, instead of sorting the whole inventory at every flush.
func addSorted(inventory, fresh []Issuance) []Issuance {
	if len(fresh) == 0 {
		return inventory
	}
	if !slices.IsSortedFunc(inventory, compareIssuance) { // a state file written by hand or another tool
		slices.SortFunc(inventory, compareIssuance)
	}
	slices.SortFunc(fresh, compareIssuance)
	out := make([]Issuance, 0, len(inventory)+len(fresh))
	for len(inventory) > 0 && len(fresh) > 0 {
		if compareIssuance(fresh[0], inventory[0]) < 0 {
			out, fresh = append(out, fresh[0]), fresh[1:]
		} else {
			out, inventory = append(out, inventory[0]), inventory[1:]
		}
	}
	out = append(out, inventory...)
	return append(out, fresh...)
}
