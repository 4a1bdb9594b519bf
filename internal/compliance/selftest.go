package compliance

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"time"
)

// SelfTest makes one in-memory TLS handshake with the policy applied on both sides and returns
// ErrUnavailable when it fails, or when it does not negotiate what the policy demands, so that meshca refuses
// to start rather than fail every agent's handshake (a FIPS module or a crypto/tls build without ML-KEM).
// GODEBUG=tlsmlkem=0 does not make pqc fail: since Go 1.24 it changes only the default groups, and Apply sets
// the groups explicitly. The None policy always passes.
func (p Policy) SelfTest(ctx context.Context) error { return p.selfTest(ctx, nil) }

// selfTest is SelfTest with the client's configuration changed by client (tests make it break).
func (p Policy) selfTest(ctx context.Context, client func(*tls.Config)) error {
	if p.rules() == nil {
		return nil
	}
	cert, pool, err := selfSigned()
	if err != nil {
		return fmt.Errorf("%w: %s self-test: %v", ErrUnavailable, p, err)
	}
	// No tickets: a server writing them into the synchronous pipe after the handshake would wait forever.
	srv := p.Clone(&tls.Config{Certificates: []tls.Certificate{cert}, SessionTicketsDisabled: true})
	cli := p.Clone(&tls.Config{RootCAs: pool, ServerName: "self-test.meshca.invalid"})
	if client != nil {
		client(cli)
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	s := tls.Server(a, srv)
	go func() { errc <- s.HandshakeContext(ctx); a.Close() }()
	c := tls.Client(b, cli)
	cerr := c.HandshakeContext(ctx)
	b.Close()
	serr := <-errc
	if cerr != nil || serr != nil {
		return fmt.Errorf("%w: %s self-test handshake failed (check GODEBUG, e.g. tlsmlkem=0, and GOFIPS140): "+
			"client: %v; server: %v", ErrUnavailable, p, cerr, serr)
	}
	if err := p.Check(c.ConnectionState()); err != nil {
		return fmt.Errorf("%w: %s self-test: %v", ErrUnavailable, p, err)
	}
	return nil
}

// selfSigned returns a throwaway P-256 certificate (valid for every policy) and a pool trusting it.
func selfSigned() (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "meshca self-test"},
		DNSNames: []string{"self-test.meshca.invalid"}, NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool, nil
}
