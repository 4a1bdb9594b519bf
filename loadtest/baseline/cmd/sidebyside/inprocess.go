package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	istioca "istio.io/istio/security/pkg/pki/ca"

	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/internal/devtoken"
	"github.com/meshca/meshca/loadtest/baseline"
)

// inputs are n requests made before any timer: each its own identity, token and CSR.
type inputs struct {
	ids    []*url.URL
	tokens []string
	csrs   [][]byte
}

// makeInputs makes n requests for the key type; RSA keys come from a pool of pool keys (CSRs stay distinct:
// each names its own identity), ECDSA keys are fresh for every request.
func makeInputs(dev *devtoken.Minter, td string, n int, rsaKeys bool, pool int) (*inputs, error) {
	in := &inputs{ids: make([]*url.URL, n), tokens: make([]string, n), csrs: make([][]byte, n)}
	var keys []crypto.Signer
	if rsaKeys {
		keys = make([]crypto.Signer, pool)
		if err := parallel(pool, func(i int) (err error) {
			keys[i], err = rsa.GenerateKey(rand.Reader, 2048)
			return err
		}); err != nil {
			return nil, err
		}
	}
	err := parallel(n, func(i int) error {
		sa := fmt.Sprintf("sa-%d", i)
		in.ids[i] = &url.URL{Scheme: "spiffe", Host: td, Path: "/ns/bench/sa/" + sa}
		tok, err := dev.Mint(devtoken.Claims{Namespace: "bench", ServiceAccount: sa, TTL: time.Hour})
		if err != nil {
			return err
		}
		in.tokens[i] = tok
		var key crypto.Signer
		if rsaKeys {
			key = keys[i%pool]
		} else if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return err
		}
		in.csrs[i], err = workloadCSR(key, in.ids[i])
		return err
	})
	return in, err
}

// workloadCSR is a CSR shaped like istio-agent's: empty subject, one URI SAN in a critical extension.
func workloadCSR(key crypto.Signer, id *url.URL) ([]byte, error) {
	san, err := asn1.Marshal([]asn1.RawValue{{Tag: 6, Class: asn1.ClassContextSpecific, Bytes: []byte(id.String())}})
	if err != nil {
		return nil, err
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{Organization: []string{""}},
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Critical: true, Value: san}}}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

func parallel(n int, f func(i int) error) error {
	var wg sync.WaitGroup
	errs := make([]error, runtime.GOMAXPROCS(0))
	var mu sync.Mutex
	next := 0
	for w := range errs {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n || errs[w] != nil {
					return
				}
				errs[w] = f(i)
			}
		})
	}
	wg.Wait()
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// newMeshcaIssuer is meshca's issuance core as `meshca serve --dev` builds it: the file backend on the dev
// cacerts, the dev token issuer, the default policy and limits, metrics, and an audit record per request
// (JSON, discarded here; the server writes it to stderr).
func newMeshcaIssuer(ctx context.Context, cacerts string, dev *devtoken.Minter, td string) (*ca.Issuer, error) {
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	fb, err := file.New(ctx, file.Config{Dir: cacerts, Registerer: reg, Logger: log}) // not into the report
	if err != nil {
		return nil, err
	}
	j, err := authn.NewJWT([]authn.TokenIssuer{{Issuer: dev.Issuer, Keys: dev.Keys()}}, authn.JWTOptions{})
	if err != nil {
		return nil, err
	}
	return ca.New(ca.Config{Backends: []ca.NamedBackend{{Name: "file", Backend: fb}}, Authenticator: j,
		Policy: ca.Policy{TrustDomain: td}, Logger: log, Audit: log, Registerer: reg})
}

// inProcess measures every in-process case on in.
func inProcess(ctx context.Context, s *setup, in *inputs) ([]baseline.Measurement, error) {
	n := len(in.csrs)
	cases := []struct {
		name string
		op   func(i int) error
	}{
		{caseStdlib, func(i int) error { _, err := s.signer.StdlibFloor(in.csrs[i], in.ids[i]); return err }},
		{caseEssential, func(i int) error {
			_, err := s.signer.EssentialFloor(in.tokens[i], s.tokenKey, s.td, in.csrs[i])
			return err
		}},
		{caseIstioSign, func(i int) error {
			_, err := s.istio.Sign(in.csrs[i], istioca.CertOpts{SubjectIDs: []string{in.ids[i].String()},
				TTL: 24 * time.Hour})
			return err
		}},
		{caseMeshcaIssue, func(i int) error {
			_, err := s.issuer.Issue(ctx, &ca.Request{Credentials: authn.Request{Token: in.tokens[i]},
				CSR: in.csrs[i], TTL: 24 * time.Hour})
			return err
		}},
	}
	var out []baseline.Measurement
	for _, c := range cases {
		m, err := baseline.Measure(c.name, n, c.op)
		if err != nil {
			return nil, err
		}
		if m.Errors > 0 {
			return nil, fmt.Errorf("%s: %d of %d failed: %v", c.name, m.Errors, n, m.FirstErr)
		}
		out = append(out, m)
	}
	return out, nil
}
