package crl

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxIdentityLen bounds an identity (a SPIFFE ID is at most 2048 bytes).
const MaxIdentityLen = 2048

// formatVersion is the version of the persisted form that Marshal writes and Unmarshal accepts.
const formatVersion = 1

// Entry is one revoked certificate.
type Entry struct {
	// Serial is the certificate's serial number.
	Serial *big.Int
	// CA is the CA that issued it; the entry appears in that CA's CRL only.
	CA CAID
	// Reason is the RFC 5280 reason code.
	Reason Reason
	// RevokedAt is the revocation time (UTC, whole seconds).
	RevokedAt time.Time
	// NotAfter is the certificate's expiry. The entry leaves the CRL one CRL lifetime after it (RFC 5280 §3.3:
	// it appears on at least one CRL issued after the certificate expired) and the store soon after.
	NotAfter time.Time
	// Identity is the certificate's SPIFFE ID when known.
	Identity string
}

// Issuance is one certificate meshca issued, as the inventory records it.
type Issuance struct {
	Serial *big.Int
	// Identity is the SPIFFE ID the certificate carries.
	Identity string
	// CA is the CA that signed it.
	CA CAID
	// NotAfter is the certificate's expiry; the record is dropped after it.
	NotAfter time.Time
	// IssuedAt is when the issuer decided to issue it: take the time before checking quarantine, so a
	// revocation by identity that races with the issuance still catches it. Default: when Record is called.
	IssuedAt time.Time
}

// CRLInfo describes the current CRL of one CA that meshca signs. Every replica builds the same CRL from it and
// the entries: same number, same times, same list.
type CRLInfo struct {
	Number     uint64
	ThisUpdate time.Time
	NextUpdate time.Time
	// Digest is the hex SHA-256 of the entries the CRL lists; a change means a new CRL is due.
	Digest string
}

// Mark is the trace of a revocation by identity: certificates of Identity issued at or before Before that reach
// the inventory later (records another replica had not yet flushed) are revoked when they arrive.
type Mark struct {
	Identity string
	Before   time.Time
	Reason   Reason
	// Expires is when the mark is dropped.
	Expires time.Time
}

// State is everything a Store persists: revocations, the issued-serial inventory, quarantines and the CRL
// numbering. Stores hand out copies; the zero value is an empty state.
type State struct {
	// Revision identifies this version in its store (a counter for a file, the resourceVersion of a Kubernetes
	// object). It is not persisted.
	Revision string
	// LastNumber is the last CRL number given to any CRL; numbers are shared by all CAs so they never repeat.
	LastNumber uint64
	// CRLs is the current CRL of each CA meshca signs for.
	CRLs map[CAID]CRLInfo
	// Revoked are the revoked certificates, at most one entry per (CA, serial).
	Revoked []Entry
	// Issued is the inventory, at most one record per (CA, serial).
	Issued []Issuance
	// Quarantine maps an identity to the time until which it gets no new certificate.
	Quarantine map[string]time.Time
	// Marks are the revocations by identity still catching late inventory records.
	Marks []Mark
	// InventoryGap is the latest NotAfter of inventory records that were dropped (inventory or buffer full):
	// until then, a revocation by identity may miss certificates.
	InventoryGap time.Time
}

// Clone returns a copy of s that shares nothing mutable with it but the serial numbers: a serial in a State
// is never changed in place (this package replaces it, never sets it), so clones share them. The store
// clones the whole inventory at every flush, and copying 20,000 big.Ints was a third of its cost.
func (s *State) Clone() *State {
	c := *s
	c.CRLs = maps.Clone(s.CRLs)
	c.Quarantine = maps.Clone(s.Quarantine)
	c.Marks = slices.Clone(s.Marks)
	c.Revoked = slices.Clone(s.Revoked)
	c.Issued = slices.Clone(s.Issued)
	return &c
}

// compareIssuance is the inventory's order: soonest expiry first, then CA and serial. Marshal writes the
// inventory in this order, and the registry keeps it so (merge), so a flush need not sort it again.
func compareIssuance(a, b Issuance) int {
	return cmp.Or(a.NotAfter.Compare(b.NotAfter), strings.Compare(string(a.CA), string(b.CA)), a.Serial.Cmp(b.Serial))
}

func entryKey(ca CAID, serial *big.Int) string { return string(ca) + "/" + serial.Text(16) }

// wire forms: times are Unix seconds, serials lowercase hex. Issued is the bulk of the state, so its fields
// have one-letter names.
type wireState struct {
	Version      int              `json:"version"`
	LastNumber   uint64           `json:"lastNumber,omitempty"`
	CRLs         map[CAID]wireCRL `json:"crls,omitempty"`
	Revoked      []wireEntry      `json:"revoked,omitempty"`
	Issued       []wireIssuance   `json:"issued,omitempty"`
	Quarantine   map[string]int64 `json:"quarantine,omitempty"`
	Marks        []wireMark       `json:"marks,omitempty"`
	InventoryGap int64            `json:"inventoryGap,omitempty"`
}

type wireCRL struct {
	Number     uint64 `json:"number"`
	ThisUpdate int64  `json:"thisUpdate"`
	NextUpdate int64  `json:"nextUpdate"`
	Digest     string `json:"digest"`
}

type wireEntry struct {
	Serial    string `json:"serial"`
	CA        CAID   `json:"ca"`
	Reason    Reason `json:"reason,omitempty"`
	RevokedAt int64  `json:"revokedAt"`
	NotAfter  int64  `json:"notAfter"`
	Identity  string `json:"identity,omitempty"`
}

type wireIssuance struct {
	Serial   string `json:"s"`
	Identity string `json:"i"`
	CA       CAID   `json:"c"`
	NotAfter int64  `json:"n"`
	IssuedAt int64  `json:"t"`
}

type wireMark struct {
	Identity string `json:"identity"`
	Before   int64  `json:"before"`
	Reason   Reason `json:"reason,omitempty"`
	Expires  int64  `json:"expires"`
}

// Marshal encodes s in its persisted form (JSON, deterministic for a given state). Revision is not encoded.
func Marshal(s *State) ([]byte, error) {
	w := wireState{Version: formatVersion, LastNumber: s.LastNumber, InventoryGap: unix(s.InventoryGap)}
	if len(s.CRLs) > 0 {
		w.CRLs = make(map[CAID]wireCRL, len(s.CRLs))
		for id, c := range s.CRLs {
			w.CRLs[id] = wireCRL{c.Number, unix(c.ThisUpdate), unix(c.NextUpdate), c.Digest}
		}
	}
	for _, e := range sortedEntries(s.Revoked) {
		w.Revoked = append(w.Revoked, wireEntry{e.Serial.Text(16), e.CA, e.Reason, unix(e.RevokedAt),
			unix(e.NotAfter), e.Identity})
	}
	issued := s.Issued
	if !slices.IsSortedFunc(issued, compareIssuance) {
		issued = slices.Clone(issued)
		slices.SortFunc(issued, compareIssuance)
	}
	if len(s.Quarantine) > 0 {
		w.Quarantine = make(map[string]int64, len(s.Quarantine))
		for id, until := range s.Quarantine {
			w.Quarantine[id] = unix(until)
		}
	}
	marks := slices.Clone(s.Marks)
	slices.SortFunc(marks, func(a, b Mark) int {
		return cmp.Or(strings.Compare(a.Identity, b.Identity), a.Before.Compare(b.Before))
	})
	for _, m := range marks {
		w.Marks = append(w.Marks, wireMark{m.Identity, unix(m.Before), m.Reason, unix(m.Expires)})
	}
	data, err := json.Marshal(&w)
	if err != nil || len(issued) == 0 {
		return data, err
	}
	// The inventory is most of the state: it is written last, by appendIssued, rather than through
	// encoding/json's reflection and its re-validation of a Marshaler's output (half of a flush's time).
	data = append(data[:len(data)-1], `,"issued":`...)
	data = appendIssued(slices.Grow(data, len(issued)*192), issued)
	return append(data, '}'), nil
}

func sortedEntries(es []Entry) []Entry {
	es = slices.Clone(es)
	slices.SortFunc(es, func(a, b Entry) int {
		return cmp.Or(strings.Compare(string(a.CA), string(b.CA)), a.Serial.Cmp(b.Serial))
	})
	return es
}

// Unmarshal decodes and checks a state that Marshal encoded. Anything malformed, unknown fields and duplicate
// entries included, is an error wrapping ErrCorrupt: a state this version cannot fully understand must not be
// rewritten by it, or entries would be lost.
func Unmarshal(data []byte) (*State, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var w wireState
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("crl: %w: %v", ErrCorrupt, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("crl: %w: data after the state", ErrCorrupt)
	}
	s, err := w.state()
	if err != nil {
		return nil, fmt.Errorf("crl: %w: %v", ErrCorrupt, err)
	}
	return s, nil
}

func (w *wireState) state() (*State, error) {
	if w.Version != formatVersion {
		return nil, fmt.Errorf("format version %d, this meshca reads version %d", w.Version, formatVersion)
	}
	s := &State{LastNumber: w.LastNumber}
	var err error
	if s.InventoryGap, err = fromUnix(w.InventoryGap, true); err != nil {
		return nil, fmt.Errorf("inventoryGap: %w", err)
	}
	for id, c := range w.CRLs {
		if !id.Valid() {
			return nil, fmt.Errorf("crls: bad CA id %.80q", id)
		}
		info := CRLInfo{Number: c.Number, Digest: c.Digest}
		if info.ThisUpdate, err = fromUnix(c.ThisUpdate, false); err == nil {
			info.NextUpdate, err = fromUnix(c.NextUpdate, false)
		}
		if err != nil || c.Number == 0 || c.Number > w.LastNumber || !isHex(c.Digest, 64) {
			return nil, fmt.Errorf("crls: bad CRL record for %s", id)
		}
		if s.CRLs == nil {
			s.CRLs = map[CAID]CRLInfo{}
		}
		s.CRLs[id] = info
	}
	seen := map[string]bool{}
	for i, we := range w.Revoked {
		e := Entry{CA: we.CA, Reason: we.Reason, Identity: we.Identity}
		if e.Serial, err = parseSerial(we.Serial); err == nil {
			if e.RevokedAt, err = fromUnix(we.RevokedAt, false); err == nil {
				e.NotAfter, err = fromUnix(we.NotAfter, false)
			}
		}
		if err == nil {
			err = checkRecord(e.CA, e.Identity, true)
		}
		if err == nil && !e.Reason.Valid() {
			err = fmt.Errorf("reason %d", int(e.Reason))
		}
		if err == nil && seen[entryKey(e.CA, e.Serial)] {
			err = fmt.Errorf("duplicate entry")
		}
		if err != nil {
			return nil, fmt.Errorf("revoked[%d]: %w", i, err)
		}
		seen[entryKey(e.CA, e.Serial)] = true
		s.Revoked = append(s.Revoked, e)
	}
	clear(seen)
	for i, wr := range w.Issued {
		r := Issuance{CA: wr.CA, Identity: wr.Identity}
		if r.Serial, err = parseSerial(wr.Serial); err == nil {
			if r.NotAfter, err = fromUnix(wr.NotAfter, false); err == nil {
				r.IssuedAt, err = fromUnix(wr.IssuedAt, false)
			}
		}
		if err == nil {
			err = checkRecord(r.CA, r.Identity, false)
		}
		if err == nil && seen[entryKey(r.CA, r.Serial)] {
			err = fmt.Errorf("duplicate record")
		}
		if err != nil {
			return nil, fmt.Errorf("issued[%d]: %w", i, err)
		}
		seen[entryKey(r.CA, r.Serial)] = true
		s.Issued = append(s.Issued, r)
	}
	for id, until := range w.Quarantine {
		t, err := fromUnix(until, false)
		if err == nil {
			err = checkIdentity(id)
		}
		if err != nil {
			return nil, fmt.Errorf("quarantine: %w", err)
		}
		if s.Quarantine == nil {
			s.Quarantine = map[string]time.Time{}
		}
		s.Quarantine[id] = t
	}
	for i, wm := range w.Marks {
		m := Mark{Identity: wm.Identity, Reason: wm.Reason}
		if m.Before, err = fromUnix(wm.Before, false); err == nil {
			m.Expires, err = fromUnix(wm.Expires, false)
		}
		if err == nil {
			err = checkIdentity(m.Identity)
		}
		if err == nil && !m.Reason.Valid() {
			err = fmt.Errorf("reason %d", int(m.Reason))
		}
		if err != nil {
			return nil, fmt.Errorf("marks[%d]: %w", i, err)
		}
		s.Marks = append(s.Marks, m)
	}
	return s, nil
}

// checkRecord checks the CA and identity of an entry or inventory record; identity may be empty for entries.
func checkRecord(ca CAID, identity string, identityOptional bool) error {
	if !ca.Valid() {
		return fmt.Errorf("bad CA id %.80q", ca)
	}
	if identity == "" && identityOptional {
		return nil
	}
	return checkIdentity(identity)
}

// checkIdentity accepts a non-empty, bounded, printable UTF-8 string. meshca's identities are SPIFFE IDs, but
// this package keeps them opaque.
func checkIdentity(id string) error {
	if id == "" || len(id) > MaxIdentityLen || !utf8.ValidString(id) {
		return fmt.Errorf("identity must be 1 to %d bytes of UTF-8", MaxIdentityLen)
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return fmt.Errorf("identity holds a control character")
		}
	}
	return nil
}

// checkSerial accepts a positive serial of at most 20 octets (RFC 5280 §4.1.2.2), 160 bits tolerated.
func checkSerial(n *big.Int) error {
	if n == nil || n.Sign() <= 0 || n.BitLen() > 160 {
		return fmt.Errorf("serial must be a positive number of at most 20 octets")
	}
	return nil
}

func isHex(s string, n int) bool {
	return len(s) == n && strings.TrimLeft(s, "0123456789abcdef") == ""
}

func parseSerial(s string) (*big.Int, error) {
	if s == "" || len(s) > 40 || !isHex(s, len(s)) || s[0] == '0' {
		return nil, fmt.Errorf("serial %.50q is not lowercase hex without leading zeros", s)
	}
	n, _ := new(big.Int).SetString(s, 16)
	return n, checkSerial(n)
}

// maxUnix is 9999-12-31T23:59:59Z.
const maxUnix = 253402300799

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func fromUnix(n int64, zeroOK bool) (time.Time, error) {
	switch {
	case n == 0 && zeroOK:
		return time.Time{}, nil
	case n <= 0 || n > maxUnix:
		return time.Time{}, fmt.Errorf("time %d out of range", n)
	}
	return time.Unix(n, 0).UTC(), nil
}

// appendIssued appends the inventory as encoding/json would encode it as []wireIssuance: serials in lowercase
// hex, times in Unix seconds, strings quoted as encoding/json quotes them.
func appendIssued(b []byte, l []Issuance) []byte {
	b = append(b, '[')
	for i, r := range l {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"s":"`...)
		b = r.Serial.Append(b, 16)
		b = append(b, `","i":`...)
		b = appendJSONString(b, r.Identity)
		b = append(b, `,"c":`...)
		b = appendJSONString(b, string(r.CA))
		b = append(b, `,"n":`...)
		b = strconv.AppendInt(b, unix(r.NotAfter), 10)
		b = append(b, `,"t":`...)
		b = strconv.AppendInt(b, unix(r.IssuedAt), 10)
		b = append(b, '}')
	}
	return append(b, ']')
}

// appendJSONString appends s quoted as encoding/json quotes it: printable ASCII that needs no escape (as
// SPIFFE IDs and CA ids are) is copied; anything else goes through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
