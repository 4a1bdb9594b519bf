package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/csr"
)

// servingCert keeps meshca's own TLS certificate fresh. By default it is issued through the configured
// backends (so agents verify it against the mesh root, as they verify istiod) and renewed at two thirds of
// its life; alternatively it is read from files (e.g. managed by cert-manager) and re-read when they change.
type servingCert struct {
	issuer   *ca.Issuer
	identity csr.Identity
	dnsNames []string
	ips      []net.IP
	ttl      time.Duration
	certFile string
	keyFile  string
	log      *slog.Logger

	cur     atomic.Pointer[tls.Certificate]
	issued  atomic.Int64 // Unix nanoseconds when cur was obtained
	fileMod time.Time
}

func (s *servingCert) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := s.cur.Load()
	if c == nil {
		return nil, errors.New("meshca: no serving certificate yet")
	}
	return c, nil
}

// refresh obtains a new certificate, from files or from the issuer.
func (s *servingCert) refresh(ctx context.Context) error {
	if s.certFile != "" {
		return s.loadFiles()
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{s.identity.URI()},
		DNSNames: s.dnsNames, IPAddresses: s.ips}, key)
	if err != nil {
		return fmt.Errorf("serving certificate CSR: %w", err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return fmt.Errorf("serving certificate CSR: %w", err)
	}
	resp, err := s.issuer.IssueServing(ctx, &ca.ServingRequest{Namespace: s.identity.Namespace,
		ServiceAccount: s.identity.ServiceAccount, CSR: csr, DNSNames: s.dnsNames, IPAddresses: s.ips, TTL: s.ttl})
	if err != nil {
		return fmt.Errorf("issuing the serving certificate: %w", err)
	}
	name := resp.Backend
	c := &tls.Certificate{PrivateKey: key, Leaf: resp.Chain[0]}
	for _, cert := range resp.Chain[:len(resp.Chain)-1] { // the peer has the root
		c.Certificate = append(c.Certificate, cert.Raw)
	}
	s.issued.Store(time.Now().UnixNano())
	s.cur.Store(c)
	s.log.Info("serving certificate issued", "backend", name, "dns_names", s.dnsNames, "ips", s.ips,
		"not_after", c.Leaf.NotAfter.UTC())
	return nil
}

func (s *servingCert) loadFiles() error {
	st, err := os.Stat(s.certFile)
	if err != nil {
		return fmt.Errorf("serving certificate: %w", err)
	}
	if !st.ModTime().After(s.fileMod) && s.cur.Load() != nil {
		return nil
	}
	c, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
	if err != nil {
		return fmt.Errorf("serving certificate: %w", err)
	}
	s.fileMod = st.ModTime()
	s.cur.Store(&c)
	s.log.Info("serving certificate loaded from files", "cert_file", s.certFile, "not_after", c.Leaf.NotAfter.UTC())
	return nil
}

// next returns how long to wait before the next refresh.
func (s *servingCert) next() time.Duration {
	if s.certFile != "" {
		return 30 * time.Second
	}
	c := s.cur.Load()
	if c == nil || c.Leaf == nil {
		return 5 * time.Second
	}
	// Two thirds of the life it had when issued; NotBefore may be backdated for clock skew, so it is not used.
	issued := time.Unix(0, s.issued.Load())
	life := c.Leaf.NotAfter.Sub(issued)
	return time.Until(issued.Add(life * 2 / 3))
}

// run refreshes the certificate until ctx ends, retrying failures every few seconds.
func (s *servingCert) run(ctx context.Context) {
	for {
		wait := s.next()
		if wait < time.Second {
			wait = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if err := s.refresh(ctx); err != nil {
			s.log.Error("renewing the serving certificate failed; retrying", "error", err)
		}
	}
}

// tlsConfig asks for (but does not require) a client certificate: authn.ClientCert verifies it against the
// current roots, so renewals keep working across CA rotations.
func (s *servingCert) tlsConfig(curves []tls.CurveID) *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS12,
		GetCertificate:   s.get,
		ClientAuth:       tls.RequestClientCert,
		CurvePreferences: curves,
	}
}
