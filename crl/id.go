package crl

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"strings"
)

// CAID identifies an issuing CA: "ski:" and the hex of its subject key identifier, or, for a CA certificate
// without one, "sha256:" and the hex SHA-256 of the certificate. A CRL is scoped to an issuer name and key, so
// a CA certificate renewed with the same key keeps its CAID and its CRL.
type CAID string

// IDOf returns the CAID of the CA certificate ca.
func IDOf(ca *x509.Certificate) CAID {
	if len(ca.SubjectKeyId) > 0 {
		return CAID("ski:" + hex.EncodeToString(ca.SubjectKeyId))
	}
	sum := sha256.Sum256(ca.Raw)
	return CAID("sha256:" + hex.EncodeToString(sum[:]))
}

// IssuerOf returns the CAID of the CA that issued cert, from its authority key identifier, or "" when cert
// has none.
func IssuerOf(cert *x509.Certificate) CAID {
	if len(cert.AuthorityKeyId) == 0 {
		return ""
	}
	return CAID("ski:" + hex.EncodeToString(cert.AuthorityKeyId))
}

// Valid reports whether id has the form IDOf gives.
func (id CAID) Valid() bool {
	s := string(id)
	var h string
	switch {
	case strings.HasPrefix(s, "ski:"):
		h = s[len("ski:"):]
		if len(h) < 2 || len(h) > 128 {
			return false
		}
	case strings.HasPrefix(s, "sha256:"):
		h = s[len("sha256:"):]
		if len(h) != 2*sha256.Size {
			return false
		}
	default:
		return false
	}
	for _, c := range h {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return len(h)%2 == 0
}
