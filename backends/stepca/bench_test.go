package stepca_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/stepca/stepcatest"
)

// benchParallelism multiplies GOMAXPROCS into the number of concurrent requests; every variant uses it.
const benchParallelism = 4

// BenchmarkStepCASign compares signing straight against step-ca (a minimal client: mint a JWK token, POST
// /1.0/sign, parse the leaf) with signing through the backend and through the whole issuance core (JWT
// authentication, CSR parsing, policy, chain verification), one request at a time (serial: latency) and at
// 4×GOMAXPROCS concurrent requests (parallel: throughput). Each variant reports its time per signature over
// the direct client's at the same concurrency as x-direct. Run the variants together:
//
//	go test ./backends/stepca -run '^$' -bench StepCASign -benchtime 5s
func BenchmarkStepCASign(b *testing.B) {
	srv := sharedServer(b)
	reqs := make([]*backends.SignRequest, 64)
	for i := range reqs {
		reqs[i] = signRequest(b, ecKey(b), fmt.Sprintf("spiffe://cluster.local/ns/bench/sa/sa-%d", i), time.Hour)
	}
	direct := newDirectClient(b, srv)
	be := newBackend(b, jwkConfig(srv))
	m := newMesh(b, srv, false, false)
	agents := make([]agent, len(reqs))
	for i := range agents {
		agents[i] = m.agent(b, i)
	}
	variants := []struct {
		name string
		sign func(i int64) error
	}{
		{"direct", func(i int64) error { return direct.sign(reqs[i%int64(len(reqs))]) }},
		{"backend", func(i int64) error {
			_, err := be.Sign(context.Background(), reqs[i%int64(len(reqs))])
			return err
		}},
		{"issuer", func(i int64) error {
			_, err := m.issue(agents[i%int64(len(agents))])
			return err
		}},
	}
	for _, parallel := range []bool{false, true} {
		mode := "serial"
		if parallel {
			mode = "parallel"
		}
		var directNs float64
		for _, v := range variants {
			b.Run(mode+"/"+v.name, func(b *testing.B) {
				var n atomic.Int64
				b.ResetTimer()
				if parallel {
					b.SetParallelism(benchParallelism)
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if err := v.sign(n.Add(1)); err != nil {
								b.Error(err)
								return
							}
						}
					})
				} else {
					for i := 0; i < b.N; i++ {
						if err := v.sign(int64(i)); err != nil {
							b.Fatal(err)
						}
					}
				}
				ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
				if v.name == "direct" {
					directNs = ns
				} else if directNs > 0 {
					b.ReportMetric(ns/directNs, "x-direct")
				}
			})
		}
	}
}

// directClient is what a hand-written step-ca client does to sign: mint a JWK token and POST /1.0/sign.
type directClient struct {
	url, aud string
	client   *http.Client
	signer   jose.Signer
	name     string
}

func newDirectClient(tb testing.TB, srv *stepcatest.Server) *directClient {
	tb.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Root)
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: srv.JWK.Key.Key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", srv.JWK.Key.KeyID))
	if err != nil {
		tb.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 64}
	tb.Cleanup(tr.CloseIdleConnections)
	return &directClient{url: srv.URL + "/1.0/sign", aud: srv.URL + "/1.0/sign", name: srv.JWK.Name,
		client: &http.Client{Timeout: 10 * time.Second, Transport: tr}, signer: sig}
}

func (d *directClient) sign(req *backends.SignRequest) error {
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return err
	}
	now := time.Now()
	sum := sha256.Sum256(req.CSR.Raw)
	tok, err := jwt.Signed(d.signer).Claims(map[string]any{
		"jti": hex.EncodeToString(jti[:]), "iss": d.name, "sub": req.URIs[0].String(), "aud": d.aud,
		"nbf": now.Unix(), "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(),
		"sans": []string{req.URIs[0].String()},
		"cnf":  map[string]string{"x5rt#S256": base64.RawURLEncoding.EncodeToString(sum[:])},
	}).Serialize()
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]string{
		"csr": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: req.CSR.Raw})),
		"ott": tok, "notAfter": now.Add(time.Hour).UTC().Format(time.RFC3339),
	})
	resp, err := d.client.Post(d.url, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("step-ca answered %s: %s", resp.Status, data)
	}
	var out struct {
		Crt string `json:"crt"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return err
	}
	block, _ := pem.Decode([]byte(out.Crt))
	if block == nil {
		return fmt.Errorf("no certificate in step-ca's answer")
	}
	_, err = x509.ParseCertificate(block.Bytes)
	return err
}
