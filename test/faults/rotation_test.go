package faults_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"
	pb "istio.io/api/security/v1alpha1"

	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
)

// verifyResponse checks one response as an agent relies on it: the leaf chains, through the intermediates
// sent, to a root of the trust bundle in the same response. It returns the root it chains to.
func verifyResponse(resp *pb.IstioCertificateResponse) (*x509.Certificate, error) {
	root, _, err := verifyResponseBundle(resp)
	return root, err
}

// verifyResponseBundle is verifyResponse, also returning the response's trust bundle.
func verifyResponseBundle(resp *pb.IstioCertificateResponse) (*x509.Certificate, []*x509.Certificate, error) {
	chain := resp.GetCertChain()
	if len(chain) < 2 {
		return nil, nil, fmt.Errorf("%d elements", len(chain))
	}
	parse := func(s string) ([]*x509.Certificate, error) {
		var out []*x509.Certificate
		rest := []byte(s)
		for {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				return out, nil
			}
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, err
			}
			out = append(out, c)
		}
	}
	leaf, err := parse(chain[0])
	if err != nil || len(leaf) != 1 {
		return nil, nil, fmt.Errorf("leaf: %v", err)
	}
	inter, roots := x509.NewCertPool(), x509.NewCertPool()
	for _, s := range chain[1 : len(chain)-1] {
		cs, err := parse(s)
		if err != nil {
			return nil, nil, err
		}
		for _, c := range cs {
			inter.AddCert(c)
		}
	}
	bundle, err := parse(chain[len(chain)-1])
	if err != nil || len(bundle) == 0 {
		return nil, nil, fmt.Errorf("bundle: %v", err)
	}
	for _, c := range bundle {
		roots.AddCert(c)
	}
	paths, err := leaf[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return nil, nil, err
	}
	p := paths[0]
	return p[len(p)-1], bundle, nil
}

// TestRotationUnderLoad: under load, the file backend's intermediate is replaced under the same root, then a
// new root is published beside the old one, and only then is a new intermediate under the new root put in
// place. Not one request fails, every chain verifies against the bundle sent with it, and the new root was in
// the bundle of every response that finished before the first request answered with a leaf under it, so that
// agents which renewed in between already trust the new leaves.
func TestRotationUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("a load of several seconds")
	}
	dir, a := catest.FileCA(t)
	m := catest.StartMeshca(t, catest.MeshcaOptions{
		Backends: []ca.NamedBackend{{Name: "file", Backend: catest.FileBackend(t, dir, nil)}},
		Limits:   ca.Limits{PerCallerRate: -1}})
	conn := m.Dial(t)
	tok := m.Token(t, "default", "sleep")
	csr, _ := catest.WorkloadCSR(t, sleepID)
	client := pb.NewIstioCertificateServiceClient(conn)

	var served, failed atomic.Int64
	var mu sync.Mutex
	var firstErr error
	rootsSeen := map[string]int{}
	type answer struct {
		started, done time.Time
		root          *x509.Certificate   // the root the leaf chains to
		bundle        []*x509.Certificate // the response's trust bundle
	}
	var answers []answer
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok,
					"clusterid", authn.DefaultClusterID)
				started := time.Now()
				resp, err := client.CreateCertificate(ctx, &pb.IstioCertificateRequest{Csr: string(csr)})
				cancel()
				var root *x509.Certificate
				var bundle []*x509.Certificate
				if err == nil {
					root, bundle, err = verifyResponseBundle(resp)
				}
				mu.Lock()
				if err == nil {
					answers = append(answers, answer{started, time.Now(), root, bundle})
				}
				if err != nil {
					failed.Add(1)
					if firstErr == nil {
						firstErr = err
					}
				} else {
					served.Add(1)
					rootsSeen[root.Subject.String()+" "+root.SerialNumber.String()]++
				}
				mu.Unlock()
			}
		})
	}
	step := func(what string, g *file.Generated) {
		t.Helper()
		time.Sleep(500 * time.Millisecond)
		if err := g.WriteDir(dir); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s written after %d requests", what, served.Load())
	}
	a2, err := file.Generate(file.GenerateOptions{Organization: catest.TrustDomain, Root: a.Root, RootKey: a.RootKey})
	if err != nil {
		t.Fatal(err)
	}
	step("a new intermediate under the same root", a2)
	b, err := file.Generate(file.GenerateOptions{Organization: catest.TrustDomain})
	if err != nil {
		t.Fatal(err)
	}
	both := bytes.Join([][]byte{a.RootPEM, b.RootPEM}, nil)
	published := *a2
	published.RootPEM = both
	step("the new root published beside the old one", &published)
	// The new root must reach the bundle of every response before anything is signed under it.
	catest.Eventually(t, 5*time.Second, "the new root in the trust bundle", func() error {
		bundle, err := m.Issuer.TrustBundle(context.Background())
		if err != nil || !bytes.Contains(bundle, bytes.TrimSpace(b.RootPEM)) {
			return fmt.Errorf("bundle without the new root (%v)", err)
		}
		return nil
	})
	switched := *b
	switched.RootPEM = both
	step("an intermediate under the new root", &switched)
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d requests failed during the rotations; first: %v", n, n+served.Load(), firstErr)
	}
	if len(rootsSeen) != 2 {
		t.Fatalf("chains ended at %d roots (%v), want the old and then the new", len(rootsSeen), rootsSeen)
	}
	t.Logf("%d requests served through both rotations, none failed; chains by root: %v", served.Load(),
		rootsSeen)
	// The first request answered with a leaf under the new root started after every response whose bundle
	// lacked the new root had finished: no agent could have been handed a leaf it cannot yet be trusted by.
	firstNew := time.Time{}
	for _, a := range answers {
		if a.root.Equal(b.Root) && (firstNew.IsZero() || a.started.Before(firstNew)) {
			firstNew = a.started
		}
	}
	if firstNew.IsZero() {
		t.Fatal("no leaf under the new root was issued")
	}
	for _, a := range answers {
		has := false
		for _, c := range a.bundle {
			has = has || c.Equal(b.Root)
		}
		if !has && !a.done.Before(firstNew) {
			t.Fatalf("a response without the new root in its bundle finished at %s, after a request for a leaf "+
				"under the new root had started (%s)", a.done.Format(time.RFC3339Nano),
				firstNew.Format(time.RFC3339Nano))
		}
	}
}
