package file

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/meshca/meshca/backends"
)

// File names of Istio's cacerts layout.
const (
	CACertFile    = "ca-cert.pem"
	CAKeyFile     = "ca-key.pem"
	CertChainFile = "cert-chain.pem"
	RootCertFile  = "root-cert.pem"
	CRLFile       = "ca-crl.pem"
)

// ErrInvalidCA means the cacerts files do not form a usable CA.
var ErrInvalidCA = errors.New("invalid CA files")

// authority is one loaded, checked CA. It is immutable once built, so requests can keep using the one they
// started with while a reload swaps in the next.
type authority struct {
	cert   *x509.Certificate   // signing CA
	signer crypto.Signer       // its key
	chain  []*x509.Certificate // cert first, root last
	roots  []*x509.Certificate // every trust anchor in root-cert.pem
	crlPEM []byte              // ca-crl.pem, checked; empty when there is none
	crlErr error               // why ca-crl.pem was refused, or nil
	digest [sha256.Size]byte   // of the file contents this was built from
}

// readDir reads the cacerts files of dir. cert-chain.pem and ca-crl.pem are optional.
func readDir(dir string) (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, name := range cacertsFiles {
		b, err := os.ReadFile(filepath.Join(dir, name))
		switch {
		case errors.Is(err, os.ErrNotExist) && (name == CertChainFile || name == CRLFile):
			// optional
		case err != nil:
			return nil, fmt.Errorf("%w: %v", ErrInvalidCA, err)
		default:
			files[name] = b
		}
	}
	return files, nil
}

// cacertsFiles are the names of the cacerts layout, in digest order.
var cacertsFiles = []string{CACertFile, CAKeyFile, CertChainFile, RootCertFile, CRLFile}

// digestFiles returns a digest over the cacerts files in files, whatever their source, so an unchanged set is
// recognised without parsing it again.
func digestFiles(files map[string][]byte) [sha256.Size]byte {
	h := sha256.New()
	for _, name := range cacertsFiles {
		b := files[name]
		fmt.Fprintf(h, "%s:%d:", name, len(b))
		h.Write(b)
	}
	var d [sha256.Size]byte
	copy(d[:], h.Sum(nil))
	return d
}

// parseAuthority checks a set of cacerts files as a whole. A CA certificate with a composite key differs in
// three steps only (composite.go): its key comes from csr/composite, its chain is checked with
// composite.VerifyChain, and it has no CRLs.
func parseAuthority(files map[string][]byte, now time.Time) (*authority, error) {
	certs, err := backends.ParseCertificates(files[CACertFile])
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidCA, CACertFile, err)
	}
	caCert := certs[0]
	isComposite := backends.IsComposite(caCert)
	parseKey, chainOf := backends.ParsePrivateKey, buildChain
	if isComposite {
		parseKey, chainOf = parseCompositeSigner, buildCompositeChain
	}
	signer, err := parseKey(files[CAKeyFile])
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidCA, CAKeyFile, err)
	}
	if !backends.SameKey(signer.Public(), backends.CertificateKey(caCert)) {
		return nil, fmt.Errorf("%w: %s does not hold the key of %s", ErrInvalidCA, CAKeyFile, CACertFile)
	}
	if err := checkCACert(caCert, now); err != nil {
		return nil, err
	}
	roots, err := backends.ParseCertificates(files[RootCertFile])
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidCA, RootCertFile, err)
	}
	var inters []*x509.Certificate
	if len(bytes.TrimSpace(files[CertChainFile])) > 0 { // optional
		if inters, err = backends.ParseCertificates(files[CertChainFile]); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalidCA, CertChainFile, err)
		}
	}
	chain, err := chainOf(caCert, inters, roots, now)
	if err != nil {
		return nil, err
	}
	a := &authority{cert: caCert, signer: signer, chain: chain, roots: roots}
	switch {
	case !isComposite:
		a.crlPEM, a.crlErr = checkCRLs(files[CRLFile], chain)
	case len(bytes.TrimSpace(files[CRLFile])) > 0:
		a.crlErr = fmt.Errorf("%w: a composite CA's CRLs are not supported; remove %s", ErrInvalidCRL, CRLFile)
	}
	return a, nil
}

// checkCACert checks that caCert may sign certificates now.
func checkCACert(caCert *x509.Certificate, now time.Time) error {
	if !caCert.IsCA || !caCert.BasicConstraintsValid || caCert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("%w: %s is not a CA certificate with keyCertSign", ErrInvalidCA, CACertFile)
	}
	if now.After(caCert.NotAfter) || now.Before(caCert.NotBefore) {
		return fmt.Errorf("%w: %s is valid only from %s to %s", ErrInvalidCA, CACertFile,
			caCert.NotBefore.UTC().Format(time.RFC3339), caCert.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// buildChain orders caCert, the intermediates of cert-chain.pem and the root it verifies to, leaf-most first.
func buildChain(caCert *x509.Certificate, inters, roots []*x509.Certificate, now time.Time) ([]*x509.Certificate,
	error) {
	rootPool := x509.NewCertPool()
	for _, r := range roots {
		rootPool.AddCert(r)
	}
	interPool := x509.NewCertPool()
	for _, c := range inters {
		interPool.AddCert(c)
	}
	chains, err := caCert.Verify(x509.VerifyOptions{
		Roots: rootPool, Intermediates: interPool, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %s does not chain to %s through %s: %v", ErrInvalidCA, CACertFile, RootCertFile,
			CertChainFile, err)
	}
	var chain []*x509.Certificate
	for _, c := range chains { // prefer the shortest chain that lets caCert sign
		if checkSigningPathLen(c) == nil && (chain == nil || len(c) < len(chain)) {
			chain = c
		}
	}
	if chain == nil {
		return nil, checkSigningPathLen(chains[0])
	}
	return chain, nil
}

// checkSigningPathLen checks that chain, the signing CA first and the root last, lets the signing CA issue
// leaves: every CA above it must allow, by its pathLenConstraint, the CAs below it, the signing CA included.
// crypto/x509's Verify and composite.VerifyChain, given the signing CA as the first certificate, treat it as a
// leaf and do not count it, so a CA under an intermediate with pathLenConstraint 0 passes them, and every leaf
// it signed would fail path validation at Envoy (RFC 5280, Section 6.1.4 (m)).
func checkSigningPathLen(chain []*x509.Certificate) error {
	for i := 1; i < len(chain); i++ { // chain[0:i], i CAs, are below chain[i]
		c := chain[i]
		if (c.MaxPathLen > 0 || c.MaxPathLen == 0 && c.MaxPathLenZero) && i > c.MaxPathLen {
			return fmt.Errorf("%w: %s cannot sign certificates: %q above it has pathLenConstraint %d but %d CAs "+
				"below it, the signing CA included; issue the signing CA from a CA that allows it", ErrInvalidCA,
				CACertFile, c.Subject.String(), c.MaxPathLen, i)
		}
	}
	return nil
}
