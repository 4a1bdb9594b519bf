package crl

import (
	"fmt"
	"strconv"
	"strings"
)

// Reason is a CRL entry's reason code, RFC 5280 §5.3.1.
type Reason int

// The reason codes of RFC 5280 §5.3.1. Code 7 is unused, and removeFromCRL (8) belongs to delta CRLs, which
// meshca does not issue; neither is accepted.
const (
	Unspecified          Reason = 0
	KeyCompromise        Reason = 1
	CACompromise         Reason = 2
	AffiliationChanged   Reason = 3
	Superseded           Reason = 4
	CessationOfOperation Reason = 5
	CertificateHold      Reason = 6
	PrivilegeWithdrawn   Reason = 9
	AACompromise         Reason = 10
)

var reasonNames = map[Reason]string{
	Unspecified:          "unspecified",
	KeyCompromise:        "keyCompromise",
	CACompromise:         "cACompromise",
	AffiliationChanged:   "affiliationChanged",
	Superseded:           "superseded",
	CessationOfOperation: "cessationOfOperation",
	CertificateHold:      "certificateHold",
	PrivilegeWithdrawn:   "privilegeWithdrawn",
	AACompromise:         "aACompromise",
}

// Valid reports whether r is a reason code meshca puts in a CRL.
func (r Reason) Valid() bool {
	_, ok := reasonNames[r]
	return ok
}

// String returns the RFC 5280 name of r ("keyCompromise"), or its number when it has none.
func (r Reason) String() string {
	if n, ok := reasonNames[r]; ok {
		return n
	}
	return strconv.Itoa(int(r))
}

// ParseReason returns the reason named s: an RFC 5280 name in any case ("keyCompromise", "keycompromise") or
// its number ("1"). The empty string is Unspecified.
func ParseReason(s string) (Reason, error) {
	if s == "" {
		return Unspecified, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if r := Reason(n); r.Valid() {
			return r, nil
		}
	}
	for r, name := range reasonNames {
		if strings.EqualFold(name, s) {
			return r, nil
		}
	}
	return 0, fmt.Errorf("crl: %w: %.40q (want one of unspecified, keyCompromise, cACompromise, affiliationChanged, "+
		"superseded, cessationOfOperation, certificateHold, privilegeWithdrawn, aACompromise, or 0-6, 9, 10)",
		ErrInvalidReason, s)
}
