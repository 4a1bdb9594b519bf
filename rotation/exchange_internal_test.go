package rotation

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"testing"
	"time"

	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/csr"
)

func TestParseHolderRef(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want holderRef
		err  error
	}{
		{"a key and a time are read back", "00000000000000ff.1764528000",
			holderRef{key: 255, renewed: 1764528000}, nil},
		{"the largest key and time are read", "ffffffffffffffff.4294967295",
			holderRef{key: 1<<64 - 1, renewed: 1<<32 - 1}, nil},
		{"a short key is refused", "ff.1", holderRef{}, errHolderRef},
		{"a key that is not hexadecimal is refused", "000000000000000g.1", holderRef{}, errHolderRef},
		{"a missing time is refused", "00000000000000ff", holderRef{}, errHolderRef},
		{"a time past 32 bits is refused", "00000000000000ff.4294967296", holderRef{}, errHolderRef},
		{"a signed time is refused", "00000000000000ff.+1", holderRef{}, errHolderRef},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseHolderRef(tt.in)
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Fatalf("parseHolderRef(%q) = %+v, %v; want %+v, %v", tt.in, got, err, tt.want, tt.err)
			}
			if err == nil && got.String() != tt.in {
				t.Fatalf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
}

// FuzzParseHolderRef: whatever a report holds, parsing never panics, and what parses prints back to a string
// that parses to the same reference.
func FuzzParseHolderRef(f *testing.F) {
	f.Add("00000000000000ff.1764528000")
	f.Add("ffffffffffffffff.4294967295")
	f.Add("0x00000000000000.1")
	f.Add(".")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseHolderRef(s)
		if err != nil {
			return
		}
		back, err := parseHolderRef(r.String())
		if err != nil || back != r {
			t.Fatalf("%q parsed to %+v, which prints as %q and parses to %+v, %v", s, r, r.String(), back, err)
		}
	})
}

// A replica answers another's laggard only from a later, unexpired record that has what the gate needs.
func TestTrackerAnswersFromLaterRecordsOnly(t *testing.T) {
	oldCA, newCA := generate(t), generate(t)
	t0 := time.Unix(1764528000, 0)
	// The laggard: pod "x" renewed at t0 with a bundle of the old root only, at the replica that lists it.
	here := testTracker(t0, newCA)
	here.ObserveResult(podResult(oldCA, "x", t0.Add(time.Hour), oldCA))
	refs := here.Progress(1, PhasePublishing).lagging
	if len(refs) != 1 {
		t.Fatalf("%d laggards listed, want pod x", len(refs))
	}
	tests := []struct {
		name    string
		renewed time.Duration // after t0
		life    time.Duration
		signer  *file.Generated
		bundle  []*file.Generated
		gate    string
		want    bool
	}{
		{"a later renewal with the next root answers the bundle gate", time.Second, time.Hour, oldCA,
			[]*file.Generated{oldCA, newCA}, GateBundle, true},
		{"a renewal in the same second does not answer", 0, time.Hour, oldCA,
			[]*file.Generated{oldCA, newCA}, GateBundle, false},
		{"a later renewal without the next root does not answer", time.Second, time.Hour, oldCA,
			[]*file.Generated{oldCA}, GateBundle, false},
		{"an expired later record does not answer", time.Second, -time.Second, oldCA,
			[]*file.Generated{oldCA, newCA}, GateBundle, false},
		{"a later leaf from the old CA does not answer the leaf gate", time.Second, time.Hour, oldCA,
			[]*file.Generated{oldCA, newCA}, GateLeaf, false},
		{"a later leaf from the new CA answers the leaf gate", time.Second, time.Hour, newCA,
			[]*file.Generated{oldCA, newCA}, GateLeaf, true},
		{"no gate, no answer", time.Second, time.Hour, newCA, []*file.Generated{oldCA, newCA}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at := t0.Add(tt.renewed)
			there := testTracker(at, newCA)
			there.ObserveResult(podResult(tt.signer, "x", at.Add(tt.life), tt.bundle...))
			there.now = func() time.Time { return at.Add(time.Second) }
			got := there.answer(refs, tt.gate)
			if (len(got) == 1 && got[0] == refs[0]) != tt.want || len(got) > 1 {
				t.Fatalf("answer = %v, want answered %v", got, tt.want)
			}
		})
	}
}

func generate(t *testing.T) *file.Generated {
	t.Helper()
	g, err := file.Generate(file.GenerateOptions{Organization: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// testTracker is a complete tracker at now, following next's root.
func testTracker(now time.Time, next *file.Generated) *Tracker {
	tr := NewTracker(TrackerConfig{MaxLifetime: time.Hour, Started: now.Add(-time.Hour),
		Now: func() time.Time { return now }})
	tr.SetTarget(next.Root)
	return tr
}

// podResult is an issuance by signer to pod uid, expiring at notAfter, with bundle's roots.
func podResult(signer *file.Generated, uid string, notAfter time.Time, bundle ...*file.Generated) *ca.Result {
	var b []byte
	for _, g := range bundle {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: g.Root.Raw})...)
	}
	return &ca.Result{Chain: []*x509.Certificate{{NotAfter: notAfter}, signer.Intermediate, signer.Root},
		TrustBundle: b, Identity: csr.Identity{TrustDomain: "cluster.local", Namespace: "ns", ServiceAccount: "web"},
		Caller: &authn.Caller{Namespace: "ns", ServiceAccount: "web", PodName: "web-" + uid, PodUID: uid}}
}

// Crediting answered laggards counts each once, however often it is applied, and keeps the others.
func TestCreditCountsEachAnsweredLaggardOnce(t *testing.T) {
	a, b, c := holderRef{key: 1, renewed: 10}, holderRef{key: 2, renewed: 10}, holderRef{key: 3, renewed: 10}
	p := &Progress{Holders: 5, HoldingNext: 2, lagging: []holderRef{a, b, c},
		laggingOverdue: []bool{true, false, false},
		Gates:          []GateProgress{{Name: GateBundle, Active: true, Holders: 5, Done: 2, Lagging: 2, Overdue: 1}},
		Laggards:       []Laggard{{Identity: "a", ref: a}, {Identity: "b", ref: b}, {Identity: "c", ref: c}}}
	answered := map[string]bool{a.String(): true, b.String(): true}
	q := credit(credit(p, GateBundle, answered), GateBundle, answered)
	g := q.Gates[0]
	if q.HoldingNext != 4 || g.Done != 4 || g.Lagging != 1 || g.Overdue != 0 || len(q.Laggards) != 1 ||
		q.Laggards[0].Identity != "c" || len(q.lagging) != 1 || p.HoldingNext != 2 || len(p.Laggards) != 3 {
		t.Fatalf("credited twice: %d holding, gate %+v, laggards %+v; the original %d holding", q.HoldingNext, g,
			q.Laggards, p.HoldingNext)
	}
}
