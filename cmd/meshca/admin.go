package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/crl"
	"github.com/meshca/meshca/crl/admin"
	"github.com/meshca/meshca/internal/compliance"
)

// defaultAdminAddr is the admin listener unless crl.admin.addr says otherwise.
const defaultAdminAddr = "127.0.0.1:15016"

// AdminConfig configures the revocation admin API (crl/admin): revoke, quarantine, CRL report.
type AdminConfig struct {
	// Addr is the listen address; it must be a loopback address (default 127.0.0.1:15016). The API has no
	// authentication of its own: loopback keeps it out of the workloads' reach, and in Kubernetes only who may
	// `kubectl exec` or `kubectl port-forward` into the meshca pod (RBAC) reaches it.
	Addr string `json:"addr,omitempty"`
	// Disabled turns the loopback listener off (the remote one runs when configured).
	Disabled bool `json:"disabled,omitempty"`
	// Remote, when set, also serves the admin API over mTLS to the clients it allows (meshca revoke
	// --admin-addr HOST:PORT --admin-cert/--admin-key/--admin-ca), for operators elsewhere on the network.
	Remote *admin.RemoteConfig `json:"remote,omitempty"`
	// TLSPolicy is the compliance policy of the remote listener, set by meshca from compliancePolicy.
	TLSPolicy compliance.Policy `json:"-"`
}

// Validate reports every problem with c at once.
func (c *AdminConfig) Validate() error {
	var remote error
	if c.Remote != nil {
		remote = c.Remote.Validate()
	}
	if c.Addr == "" || c.Disabled {
		return remote
	}
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return errors.Join(fmt.Errorf("crl.admin.addr: %q is not host:port (e.g. 127.0.0.1:15016)",
			bounded(c.Addr)), remote)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return errors.Join(fmt.Errorf("crl.admin.addr: %q is not a loopback address: the admin API has no "+
			"authentication of its own there and must never face the workloads (reach it with kubectl "+
			"port-forward, or configure crl.admin.remote with mTLS)", bounded(c.Addr)), remote)
	}
	return remote
}

// serveAdmin returns the admin listeners' loops: the loopback one unless disabled, requiring tok (the admin
// token), and the mTLS one when configured, which authenticates by client certificate instead.
func (r *revocation) serveAdmin(c AdminConfig, tok string, log *slog.Logger) []func(context.Context) error {
	var loops []func(context.Context) error
	if !c.Disabled {
		addr := c.Addr
		if addr == "" {
			addr = defaultAdminAddr
		}
		h := requireAdminToken("crl.admin.addr", tok, admin.Handler(r, log), log)
		loops = append(loops, adminLoop(addr, "crl.admin.addr", h, nil, log))
	}
	if rc := c.Remote; rc != nil {
		tc := rc.TLSConfig(c.TLSPolicy.Apply)
		h := admin.RequireIdentity(rc.AllowedIdentities, admin.Handler(r, log), log)
		loops = append(loops, adminLoop(rc.Addr, "crl.admin.remote.addr", h, tc, log))
	}
	return loops
}

// adminLoop serves h on addr (over TLS when tc is set) until ctx ends.
func adminLoop(addr, key string, h http.Handler, tc *tls.Config, log *slog.Logger) func(context.Context) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, TLSConfig: tc,
		ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	return func(ctx context.Context) error {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		log.Info("revocation admin API listening", "addr", l.Addr().String(), "mtls", tc != nil)
		go func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		if tc != nil {
			err = srv.ServeTLS(l, "", "")
		} else {
			err = srv.Serve(l)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("revocation admin API: %w", err)
		}
		return nil
	}
}

// Revoke implements admin.Service: it revokes in the registry, then tells the backends that own the CA.
func (r *revocation) Revoke(ctx context.Context, req admin.RevokeRequest) (*admin.RevokeResponse, error) {
	reason, err := crl.ParseReason(req.Reason)
	if err != nil {
		return nil, err
	}
	res := &admin.RevokeResponse{Complete: true}
	var revs []crl.Revocation
	var certs map[int]*x509.Certificate // the certificates given, by index in revs
	switch {
	case btoi(req.Serial != "")+btoi(req.Certificate != "")+btoi(req.Identity != "") != 1:
		return nil, fmt.Errorf("%w: name exactly one of a serial, a certificate and an identity", crl.ErrInvalidRequest)
	case req.Certificate != "":
		cert, err := parseCert(req.Certificate)
		if err != nil {
			return nil, err
		}
		if req.Quarantine != "" {
			return nil, fmt.Errorf("%w: a quarantine applies to an identity, not a certificate", crl.ErrInvalidRequest)
		}
		rv, err := r.reg.Revoke(ctx, crl.RevokeRequest{Certificate: cert, CA: crl.CAID(req.CA), Reason: reason})
		if err != nil {
			return nil, err
		}
		revs, certs = []crl.Revocation{rv}, map[int]*x509.Certificate{0: cert}
	case req.Serial != "":
		if req.Quarantine != "" {
			return nil, fmt.Errorf("%w: a quarantine applies to an identity, not a serial", crl.ErrInvalidRequest)
		}
		serial, ok := new(big.Int).SetString(strings.ReplaceAll(req.Serial, ":", ""), 16)
		if !ok {
			return nil, fmt.Errorf("%w: serial %q is not hexadecimal", crl.ErrInvalidRequest, bounded(req.Serial))
		}
		rv, err := r.reg.Revoke(ctx, crl.RevokeRequest{Serial: serial, CA: crl.CAID(req.CA), Reason: reason})
		if err != nil {
			return nil, err
		}
		revs = []crl.Revocation{rv}
	default:
		ir := crl.IdentityRevocation{Identity: req.Identity, Reason: reason}
		if req.Quarantine != "" {
			d, err := time.ParseDuration(req.Quarantine)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("%w: quarantine %q is not a positive duration such as 24h",
					crl.ErrInvalidRequest,
					bounded(req.Quarantine))
			}
			ir.QuarantineUntil = time.Now().Add(d)
		}
		out, err := r.reg.RevokeIdentity(ctx, ir)
		if err != nil {
			return nil, err
		}
		revs, res.Complete = out.Revoked, out.Complete
		if until, ok := r.reg.Quarantined(req.Identity, time.Now()); ok {
			res.QuarantineUntil = &until
		}
	}
	for _, rv := range revs {
		res.Revoked = append(res.Revoked, admin.Revoked{Serial: rv.Serial.Text(16), CA: string(rv.CA),
			Identity: rv.Identity, Reason: rv.Reason.String(), RevokedAt: rv.RevokedAt, CRLNumber: rv.CRLNumber,
			Existing: rv.Existing})
	}
	res.Warnings = r.passThrough(ctx, revs, certs, res.Revoked)
	r.pub.Refresh(ctx)
	return res, nil
}

// passThrough revokes at the backends that own the CAs of revs (Vault, step-ca), so that their own CRLs, which
// meshca publishes for those CAs, list the certificates. It notes the backend in out and returns warnings.
func (r *revocation) passThrough(ctx context.Context, revs []crl.Revocation, certs map[int]*x509.Certificate,
	out []admin.Revoked) []string {
	var warnings []string
	for i, rv := range revs {
		for _, o := range r.owners {
			chain, err := o.chain(ctx)
			if err != nil || len(chain) == 0 || crl.IDOf(chain[0]) != rv.CA {
				continue
			}
			out[i].Backend = o.name
			if rv.Existing {
				continue
			}
			if err := o.revoker.Revoke(ctx, &backends.RevokeRequest{SerialNumber: rv.Serial, Certificate: certs[i],
				Reason: int(rv.Reason)}); err != nil {
				r.log.Error("the backend that owns the CA did not revoke the certificate; its CRL does not list it",
					"backend", o.name, "serial", rv.Serial.Text(16), "error", err)
				warnings = append(warnings, fmt.Sprintf("backend %s did not revoke serial %s: its CRL does not "+
					"list it; see meshca's log and revoke it there", o.name, rv.Serial.Text(16)))
			}
		}
	}
	return warnings
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// parseCert parses the one PEM certificate of a revocation request.
func parseCert(s string) (*x509.Certificate, error) {
	block, rest := pem.Decode([]byte(s))
	if block == nil || block.Type != "CERTIFICATE" || len(strings.TrimSpace(string(rest))) > 0 {
		return nil, fmt.Errorf("%w: certificate: want exactly one PEM CERTIFICATE block", crl.ErrInvalidRequest)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate: %v", crl.ErrInvalidRequest, err)
	}
	return cert, nil
}

// CRLs implements admin.Service.
func (r *revocation) CRLs(context.Context) (*admin.CRLsResponse, error) {
	rep := r.pub.Report()
	byID := map[crl.CAID]*crl.CRL{}
	for _, c := range r.pub.CRLs() {
		byID[c.ID] = c
	}
	out := &admin.CRLsResponse{Complete: rep.Complete, Checked: rep.Time}
	for _, cov := range rep.Coverage {
		info := admin.CRLInfo{CA: string(cov.ID), Subject: cov.CA.Subject.String()}
		if cov.Err != nil {
			info.Error = cov.Err.Error()
		}
		if c := byID[cov.ID]; c != nil {
			this, next := c.List.ThisUpdate, c.List.NextUpdate
			info.Origin, info.ThisUpdate, info.NextUpdate = c.Origin, &this, &next
			info.Entries = len(c.List.RevokedCertificateEntries)
			if c.List.Number != nil {
				info.Number = c.List.Number.String()
			}
		}
		out.CRLs = append(out.CRLs, info)
	}
	return out, nil
}

// PEM implements admin.Service.
func (r *revocation) PEM(ctx context.Context) ([]byte, error) { return r.pem(ctx) }
