package backends

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// ParseCertificates reads every CERTIFICATE block of a PEM bundle, in order. Text between blocks and blocks of
// other types are skipped; a malformed certificate or a bundle without any certificate is an error.
func ParseCertificates(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block found")
	}
	return certs, nil
}

// ParsePrivateKey reads the first private key of a PEM file: PKCS #8 ("PRIVATE KEY"), PKCS #1 ("RSA PRIVATE
// KEY") or SEC 1 ("EC PRIVATE KEY"). Other blocks, such as openssl's "EC PARAMETERS", are skipped; an
// encrypted key is an error, since meshca reads keys from mounted Secrets, not passphrase prompts.
func ParsePrivateKey(b []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, errors.New("no PEM private key found")
		}
		if !strings.HasSuffix(block.Type, "PRIVATE KEY") {
			continue
		}
		var key any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			return nil, fmt.Errorf("%s is not supported (encrypted keys are not); use an unencrypted PKCS #8, "+
				"PKCS #1 or SEC 1 key", block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %v", block.Type, err)
		}
		s, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("key of type %T cannot sign", key)
		}
		return s, nil
	}
}
