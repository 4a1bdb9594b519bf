package ca_test

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/catest"
)

// pointing is a backend that says its leaves carry urls, whatever its leaves really carry.
type pointing struct {
	backends.Backend
	urls []string
}

func (p pointing) CRLDistributionPoints(*backends.SignRequest) []string { return p.urls }

// TestCoreHoldsLeavesToTheBackendsDistributionPoints: the core checks a DistributionPointer's leaves against
// its own URLs, so a leaf without (or with other) distribution points than the backend declares is refused.
func TestCoreHoldsLeavesToTheBackendsDistributionPoints(t *testing.T) {
	dir, _ := catest.FileCA(t)
	tests := []struct {
		name string
		urls []string
		want error
	}{
		{"a backend declaring none, whose leaves carry none", nil, nil},
		{"a backend declaring a URL its leaves do not carry", []string{"http://meshca.example/crl"},
			backends.ErrBadChain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := pointing{Backend: catest.FileBackend(t, dir, nil), urls: tt.urls}
			i, dev := newIssuer(t, prometheus.NewRegistry(), ca.NamedBackend{Name: "file", Backend: b})
			_, err := i.Issue(context.Background(), request(t, dev))
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("Issue = %v, want %v", err, tt.want)
			}
		})
	}
}
