package file

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/csr/composite"
)

// serialLimit bounds serial numbers to 128 random bits: positive, unique with overwhelming probability, and
// well inside RFC 5280 §4.1.2.2's 20 octets.
var serialLimit = new(big.Int).Lsh(big.NewInt(1), 128)

// leafTemplate builds the certificate for req, signed by ca, following RFC 5280 and the SPIFFE X.509-SVID
// profile: not a CA, digitalSignature (and keyEncipherment for RSA keys), serverAuth and clientAuth, subject
// key identifier from the key; Go adds the authority key identifier from ca and marks the SAN extension
// critical when the subject is empty.
func leafTemplate(req *backends.SignRequest, ca *x509.Certificate, now time.Time, backdate time.Duration) (
	*x509.Certificate, error) {
	if req.TTL <= 0 {
		return nil, fmt.Errorf("%w: TTL %s must be positive", backends.ErrRefused, req.TTL)
	}
	if len(req.URIs)+len(req.DNSNames)+len(req.IPAddresses) == 0 {
		return nil, fmt.Errorf("%w: a certificate needs at least one SAN", backends.ErrRefused)
	}
	serial, err := rand.Int(rand.Reader, serialLimit)
	if err != nil {
		return nil, fmt.Errorf("generating serial number: %w", err)
	}
	serial.SetBit(serial, 127, 1) // fixed length, never zero
	ski, err := keyID(req.PublicKey)
	if err != nil {
		return nil, err
	}
	notBefore := now.Add(-backdate).Truncate(time.Second)
	if notBefore.Before(ca.NotBefore) {
		notBefore = ca.NotBefore
	}
	notAfter := now.Add(req.TTL).Truncate(time.Second)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	ku := x509.KeyUsageDigitalSignature
	if _, ok := req.PublicKey.(*rsa.PublicKey); ok {
		ku |= x509.KeyUsageKeyEncipherment
	}
	return &x509.Certificate{
		SerialNumber:          serial,
		Subject:               req.Subject,
		NotBefore:             notBefore.UTC(),
		NotAfter:              notAfter.UTC(),
		KeyUsage:              ku,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
		SubjectKeyId:          ski,
		URIs:                  req.URIs,
		DNSNames:              req.DNSNames,
		IPAddresses:           req.IPAddresses,
	}, nil
}

// keyID derives a subject key identifier from the subjectPublicKey bits: SHA-256 truncated to 160 bits
// (RFC 7093 §2, method 1).
func keyID(pub any) ([]byte, error) {
	if k, ok := pub.(*composite.PublicKey); ok { // crypto/x509 cannot marshal it; the BIT STRING holds Bytes
		sum := sha256.Sum256(k.Bytes())
		return sum[:20], nil
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: encoding public key: %v", backends.ErrRefused, err)
	}
	var spki struct {
		Algorithm asn1.RawValue
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, errors.New("decoding public key: " + err.Error())
	}
	sum := sha256.Sum256(spki.PublicKey.Bytes)
	return sum[:20], nil
}
