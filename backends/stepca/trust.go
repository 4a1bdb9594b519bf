package stepca

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/meshca/meshca/backends"
)

// trust returns the current trust state, fetching it when there is none and starting a background refresh
// when it is stale.
func (b *Backend) trust(ctx context.Context) (*trustState, error) {
	st := b.state.Load()
	if st == nil {
		return b.refreshRoots(ctx)
	}
	if b.cfg.Clock().Sub(st.fetched) > b.cfg.RootsRefresh && b.refreshing.CompareAndSwap(false, true) {
		go func() {
			defer b.refreshing.Store(false)
			ctx, cancel := context.WithTimeout(context.Background(), b.cfg.Timeout)
			defer cancel()
			if _, err := b.refreshRoots(ctx); err != nil {
				b.cfg.Logger.Warn("stepca: refreshing step-ca's roots failed; keeping the cached ones", "error", err)
			}
		}()
	}
	return st, nil
}

// refreshRoots fetches /roots and /intermediates, accepting them only if step-ca still holds a pinned root.
func (b *Backend) refreshRoots(ctx context.Context) (*trustState, error) {
	pin := b.pin.Load()
	if pin == nil {
		root, err := b.bootstrap(ctx)
		if err != nil {
			return nil, err
		}
		pin = newAnchors([]*x509.Certificate{root})
		b.pin.CompareAndSwap(nil, pin)
	}
	var roots, inters certsResponse
	if err := b.call(ctx, "roots", http.MethodGet, "/1.0/roots", nil, &roots, maxResponse); err != nil {
		return nil, err
	}
	err := b.call(ctx, "intermediates", http.MethodGet, "/1.0/intermediates", nil, &inters, maxResponse)
	if err != nil {
		return nil, err
	}
	st := &trustState{pool: x509.NewCertPool(), fetched: b.cfg.Clock()}
	for _, p := range roots.Certificates {
		cs, err := backends.ParseCertificates([]byte(p))
		if err != nil {
			return nil, fmt.Errorf("stepca: /roots: %w: %v", backends.ErrBadChain, err)
		}
		st.roots = append(st.roots, cs...)
	}
	for _, p := range inters.Certificates {
		cs, err := backends.ParseCertificates([]byte(p))
		if err != nil {
			return nil, fmt.Errorf("stepca: /intermediates: %w: %v", backends.ErrBadChain, err)
		}
		st.intermediates = append(st.intermediates, cs...)
	}
	pinnedFound := false
	for _, r := range st.roots {
		st.pool.AddCert(r)
		for _, p := range pin.certs {
			pinnedFound = pinnedFound || r.Equal(p)
		}
	}
	if !pinnedFound {
		return nil, fmt.Errorf("stepca: step-ca's /roots no longer holds the pinned root; update rootFingerprint "+
			"or rootsFile after a root rotation: %w", backends.ErrBadChain)
	}
	b.state.Store(st)
	return st, nil
}

// bootstrap fetches the root whose SHA-256 is RootFingerprint from /root/<fingerprint>. The connection is
// not authenticated; the hash is what makes the answer trustworthy.
func (b *Backend) bootstrap(ctx context.Context) (*x509.Certificate, error) {
	fp := normalizeFingerprint(b.cfg.RootFingerprint)
	client := &http.Client{
		Timeout: b.cfg.Timeout,
		Transport: &http.Transport{
			//nolint:gosec // the answer is checked by its hash below
			TLSClientConfig: b.cfg.TLSPolicy.Clone(&tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}),
			DialContext:     (&net.Dialer{Timeout: min(b.cfg.Timeout, 2*time.Second)}).DialContext,
		},
	}
	defer client.CloseIdleConnections()
	var resp struct {
		Root string `json:"ca"`
	}
	if err := b.callWith(ctx, client, "root", http.MethodGet, "/1.0/root/"+fp, nil, &resp, maxResponse); err != nil {
		if errors.Is(err, backends.ErrRefused) {
			return nil, fmt.Errorf("stepca: step-ca has no root with rootFingerprint %s; check the fingerprint and "+
				"url: %w: %w", fp, backends.ErrBadChain, err)
		}
		return nil, err
	}
	certs, err := backends.ParseCertificates([]byte(resp.Root))
	if err != nil {
		return nil, fmt.Errorf("stepca: /root/%s: %w: %v", fp, backends.ErrBadChain, err)
	}
	sum := sha256.Sum256(certs[0].Raw)
	if hex.EncodeToString(sum[:]) != fp {
		return nil, fmt.Errorf("stepca: step-ca's root does not match rootFingerprint %s; is url pointing at the "+
			"right CA?: %w", fp, backends.ErrBadChain)
	}
	return certs[0], nil
}

// errServerTrust marks a TLS handshake that failed because step-ca's certificate does not verify.
type errServerTrust struct{ err error }

func (e *errServerTrust) Error() string { return e.err.Error() }
func (e *errServerTrust) Unwrap() error { return e.err }

// verifyServer authenticates step-ca's TLS certificate against the current roots and the URL's host.
func (b *Backend) verifyServer(cs tls.ConnectionState) error {
	if err := b.verifyServerChain(cs); err != nil {
		return &errServerTrust{err}
	}
	return nil
}

func (b *Backend) verifyServerChain(cs tls.ConnectionState) error {
	var pool *x509.CertPool
	if st := b.state.Load(); st != nil {
		pool = st.pool
	} else if pin := b.pin.Load(); pin != nil {
		pool = pin.pool
	} else {
		return errors.New("no trusted step-ca roots yet")
	}
	if len(cs.PeerCertificates) == 0 {
		return errors.New("step-ca sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots: pool, Intermediates: inter, DNSName: b.host,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	return err
}
