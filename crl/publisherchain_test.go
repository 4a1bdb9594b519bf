package crl_test

import (
	"context"
	"crypto/x509"
	"testing"

	"github.com/meshca/meshca/crl"
)

func TestPublisherKeepsTheLastChainWhenABackendReturnsNone(t *testing.T) {
	for _, tc := range []struct {
		name  string
		empty []*x509.Certificate
	}{
		{"an empty chain is an error and the last chain stays", []*x509.Certificate{}},
		{"a nil chain is an error and the last chain stays", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls int
			var pe *pubEnv
			pe = newPublisher(t, func(c *crl.PublisherConfig) {
				c.Authorities[0].Chain = func(context.Context) ([]*x509.Certificate, error) {
					if calls++; calls > 1 {
						return tc.empty, nil
					}
					return pe.pki.Chain(), nil
				}
			})
			ctx := context.Background()
			pe.pub.Refresh(ctx)
			before := publishErrors(t, pe, crl.TargetSource)
			rep := pe.pub.Refresh(ctx)
			if !rep.Complete || len(rep.Coverage) != 2 {
				t.Fatalf("report: complete %v, %d CAs covered; want the last chain's 2 CAs", rep.Complete,
					len(rep.Coverage))
			}
			if n := publishErrors(t, pe, crl.TargetSource) - before; n != 1 {
				t.Fatalf("%v source errors counted for the chain without CAs, want 1", n)
			}
		})
	}
}

func TestPublisherReportBeforeAndAfterTheFirstRefresh(t *testing.T) {
	pe := newPublisher(t)
	if rep := pe.pub.Report(); rep.Err == nil || rep.Complete {
		t.Fatalf("report before any refresh: complete %v, err %v; want an error", rep.Complete, rep.Err)
	}
	want := pe.pub.Refresh(context.Background())
	if rep := pe.pub.Report(); !rep.Complete || rep.Err != nil || !rep.Time.Equal(want.Time) {
		t.Fatalf("report after a refresh: complete %v, err %v, time %v; want the refresh's", rep.Complete,
			rep.Err, rep.Time)
	}
}
