package main

import (
	"context"
	"crypto/x509"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/rotation"
	"github.com/meshca/meshca/trustbundle"
)

// rotationWiring is what serve takes from the rotation controller; without a rotation section, only the
// observer is set.
type rotationWiring struct {
	observer  ca.IssuanceObserver
	extra     func(context.Context) ([]*x509.Certificate, error)
	published func(context.Context) ([]*x509.Certificate, error)
	withdrawn func() []*x509.Certificate
	cap       func() time.Duration
}

// rotation starts the rotation controller and its admin API when the configuration has a rotation section: it
// returns the issuer's observer (the expiry tracker, and the rotation tracker beside it), the roots the phase
// adds to responses and to published bundles, the roots it withdraws and the leaf lifetime cap.
func (a *app) rotation(cfg *Config, tracker ca.IssuanceObserver, client kubernetes.Interface, log *slog.Logger,
	reg prometheus.Registerer) (*rotationWiring, error) {
	if cfg.Rotation == nil {
		a.caSwitch.unused(log)
		return &rotationWiring{observer: tracker}, nil
	}
	rc := *cfg.Rotation
	rc.MaxLifetime, rc.Logger, rc.Registerer = cfg.Issuance.EffectiveMaxTTL(), log.With("component", "rotation"), reg
	rc.Audit, rc.Client = log.With("log", "audit"), client
	a.caSwitch.rotationConfig(&rc)
	c, err := rotation.New(rc)
	if err != nil {
		return nil, err
	}
	a.caSwitch.bind(c)
	l, err := rotation.Listen(rc.AdminAddr)
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, func() error { _ = l.Close(); return nil })
	tok, err := a.loopbackAdmin(cfg, log)
	if err != nil {
		return nil, err
	}
	h := requireAdminToken("rotation.adminAddr", tok, rotation.Handler(c, rc.Logger), rc.Logger)
	a.run = append(a.run, c.Run, func(ctx context.Context) error { return rotation.Serve(ctx, l, h, rc.Logger) })
	a.pages = map[string]http.Handler{rotation.PagePath: rotation.StatusPage(c.Progress)}
	return &rotationWiring{observer: c.Observer(tracker), extra: c.ExtraRoots, published: c.PublishedRoots,
		withdrawn: c.WithdrawnRoots, cap: c.LifetimeCap}, nil
}

// withExtraRoots publishes the rotation's extra roots (the next root, then the old one) beside src's roots,
// so that the ClusterTrustBundle and istio-ca-root-cert ConfigMaps carry what the responses carry.
func withExtraRoots(src trustbundle.Source,
	extra func(context.Context) ([]*x509.Certificate, error)) trustbundle.Source {
	if extra == nil {
		return src
	}
	return trustbundle.SourceFunc(func(ctx context.Context) ([]*x509.Certificate, error) {
		roots, err := src.Roots(ctx)
		if err != nil {
			return nil, err
		}
		more, err := extra(ctx)
		if err != nil {
			return nil, err
		}
		for _, m := range more {
			if !slices.ContainsFunc(roots, m.Equal) {
				roots = append(roots, m)
			}
		}
		return roots, nil
	})
}
