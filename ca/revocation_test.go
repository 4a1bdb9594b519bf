package ca_test

import (
	"context"
	"crypto/x509"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/internal/devtoken"
)

// quarantines is a ca.Revocations with a fixed set of quarantines that records what was issued.
type quarantines struct {
	until  map[string]time.Time
	mu     sync.Mutex
	issued []issuedRecord
}

type issuedRecord struct {
	identity  string
	leaf      *x509.Certificate
	decidedAt time.Time
}

func (q *quarantines) Quarantined(identity string, now time.Time) (time.Time, bool) {
	u, ok := q.until[identity]
	return u, ok && now.Before(u)
}

func (q *quarantines) Issued(identity string, chain []*x509.Certificate, decidedAt time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.issued = append(q.issued, issuedRecord{identity, chain[0], decidedAt})
}

// A quarantined identity gets PermissionDenied and nothing is signed; every other issuance is recorded with
// its serial and the time the quarantine was checked.
func TestQuarantineAndInventory(t *testing.T) {
	dir, _ := catest.FileCA(t)
	const sleep = "spiffe://cluster.local/ns/default/sa/sleep"
	tests := []struct {
		name       string
		until      time.Duration // from now; 0 means no quarantine
		wantErr    error
		wantIssued int
	}{
		{name: "an identity without quarantine is issued and recorded", wantIssued: 1},
		{name: "a quarantined identity is refused and nothing is recorded", until: time.Hour,
			wantErr: ca.ErrQuarantined},
		{name: "a lifted quarantine refuses nothing", until: -time.Minute, wantIssued: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := &quarantines{until: map[string]time.Time{}}
			if tt.until != 0 {
				q.until[sleep] = time.Now().Add(tt.until)
			}
			dev, err := devtoken.Generate("")
			if err != nil {
				t.Fatal(err)
			}
			j, err := authn.NewJWT([]authn.TokenIssuer{{Issuer: dev.Issuer, Keys: dev.Keys()}}, authn.JWTOptions{})
			if err != nil {
				t.Fatal(err)
			}
			fb := &faulty{Backend: catest.FileBackend(t, dir, nil)}
			i, err := ca.New(ca.Config{Backends: []ca.NamedBackend{{Name: "file", Backend: fb}}, Authenticator: j,
				Policy: ca.Policy{TrustDomain: "cluster.local"}, Logger: catest.DiscardLogger(),
				Registerer: prometheus.NewRegistry(), Revocations: q})
			if err != nil {
				t.Fatal(err)
			}
			before := time.Now().Truncate(time.Second)
			res, err := i.Issue(context.Background(), request(t, dev))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Issue: %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				if got := ca.Classify(err); got.Reason != "quarantined" || res != nil || fb.calls != 0 {
					t.Fatalf("class %q, result %v, backend calls %d: want quarantined, nothing signed", got.Reason,
						res, fb.calls)
				}
			}
			if len(q.issued) != tt.wantIssued {
				t.Fatalf("%d issuances recorded, want %d", len(q.issued), tt.wantIssued)
			}
			if tt.wantIssued == 1 {
				r := q.issued[0]
				if r.identity != sleep || r.leaf.SerialNumber.Cmp(res.Chain[0].SerialNumber) != 0 ||
					r.decidedAt.Before(before) || r.decidedAt.After(time.Now()) {
					t.Fatalf("recorded %s serial %x at %s; want %s serial %x", r.identity, r.leaf.SerialNumber,
						r.decidedAt, sleep, res.Chain[0].SerialNumber)
				}
			}
		})
	}
}

// A quarantine holds on the registration-authority path too: istiod's CertificateSigningRequest for a
// quarantined identity is refused before any backend signs.
func TestQuarantineHoldsForDelegatedRequests(t *testing.T) {
	dir, _ := catest.FileCA(t)
	const sleep = "spiffe://cluster.local/ns/default/sa/sleep"
	q := &quarantines{until: map[string]time.Time{sleep: time.Now().Add(time.Hour)}}
	fb := &faulty{Backend: catest.FileBackend(t, dir, nil)}
	i, err := ca.New(ca.Config{Backends: []ca.NamedBackend{{Name: "file", Backend: fb}},
		Authenticator: authn.Chain{}, Policy: ca.Policy{TrustDomain: "cluster.local"},
		Logger: catest.DiscardLogger(), Registerer: prometheus.NewRegistry(), Revocations: q})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := catest.WorkloadCSR(t, sleep)
	res, err := i.IssueDelegated(context.Background(), &ca.DelegatedRequest{CSR: c,
		Authority: &authn.Caller{Namespace: "istio-system", ServiceAccount: "istiod", Method: "k8s-csr"}})
	if !errors.Is(err, ca.ErrQuarantined) || res != nil || fb.calls != 0 {
		t.Fatalf("IssueDelegated = %v, %v (backend calls %d); want ErrQuarantined and nothing signed",
			res != nil, err, fb.calls)
	}
}
