package admin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
)

// RemoteConfig is the admin API's mTLS listener for operators elsewhere on the network (crl.admin.remote). A
// client must present a certificate that chains to ClientCAFile, for client authentication, and names one of
// AllowedIdentities; every other client is refused, in the handshake or with 403.
type RemoteConfig struct {
	// Addr is the listen address, host:port (e.g. ":15018").
	Addr string `json:"addr"`
	// CertFile and KeyFile are the listener's certificate chain and key in PEM, re-read for every connection
	// so that a renewed certificate is used at once.
	CertFile string `json:"certFile"`
	KeyFile  string `json:"keyFile"`
	// ClientCAFile holds the CA certificates (PEM) that admin client certificates must chain to; re-read for
	// every connection. Use a CA of its own, not the mesh's: every workload holds a mesh certificate.
	ClientCAFile string `json:"clientCAFile"`
	// AllowedIdentities are the clients allowed, each a SPIFFE ID (matched against the certificate's URI SANs)
	// or a subject common name (anything else). At least one.
	AllowedIdentities []string `json:"allowedIdentities"`
}

// maxIdentity bounds an allowed identity, and the length of a client identity quoted in logs.
const maxIdentity = 256

// Validate reports every problem with c at once, naming the keys under crl.admin.remote.
func (c *RemoteConfig) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("crl.admin.remote.addr: %q is not host:port (e.g. :15018)", bounded(c.Addr)))
	}
	for key, v := range map[string]string{"certFile": c.CertFile, "keyFile": c.KeyFile,
		"clientCAFile": c.ClientCAFile} {
		if v == "" {
			errs = append(errs, fmt.Errorf("crl.admin.remote.%s is required", key))
		}
	}
	if len(c.AllowedIdentities) == 0 {
		errs = append(errs, errors.New("crl.admin.remote.allowedIdentities: name at least one SPIFFE ID or "+
			"common name: a client certificate of the CA alone is not enough"))
	}
	for _, id := range c.AllowedIdentities {
		if id == "" || len(id) > maxIdentity || strings.ContainsFunc(id, func(r rune) bool { return r < ' ' }) {
			errs = append(errs, fmt.Errorf("crl.admin.remote.allowedIdentities: %q: want 1 to %d printable bytes",
				bounded(id), maxIdentity))
		}
	}
	return errors.Join(errs...)
}

// TLSConfig returns the listener's TLS configuration: TLS 1.2 or later, a client certificate required and
// verified against ClientCAFile for client authentication; the files are read for every connection. apply,
// when not nil, is called on every configuration made (meshca's compliance policy).
func (c *RemoteConfig) TLSConfig(apply func(*tls.Config)) *tls.Config {
	if apply == nil {
		apply = func(*tls.Config) {}
	}
	outer := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("crl.admin.remote.certFile/keyFile: %w", err)
			}
			pemCAs, err := os.ReadFile(c.ClientCAFile)
			if err != nil {
				return nil, fmt.Errorf("crl.admin.remote.clientCAFile: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pemCAs) {
				return nil, fmt.Errorf("crl.admin.remote.clientCAFile: %s holds no PEM certificate", c.ClientCAFile)
			}
			inner := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert},
				ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
			apply(inner)
			return inner, nil
		},
	}
	apply(outer)
	return outer
}

// callerKey is the context key of the caller's identity.
type callerKey struct{}

// Caller returns who made the request on ctx, as the handler logs it: the client certificate's identity
// ("mtls <identity>") on the remote listener, "loopback" otherwise.
func Caller(ctx context.Context) string {
	if c, ok := ctx.Value(callerKey{}).(string); ok {
		return c
	}
	return "loopback"
}

// Identities returns what a client certificate may be allowed by: its URI SANs, then its subject common name.
func Identities(cert *x509.Certificate) []string {
	var out []string
	for _, u := range cert.URIs {
		out = append(out, u.String())
	}
	if cert.Subject.CommonName != "" {
		out = append(out, cert.Subject.CommonName)
	}
	return out
}

// RequireIdentity lets through to next only requests whose verified client certificate names one of allowed (see
// RemoteConfig.AllowedIdentities); the others get 403 and are logged. The caller's identity is put in the
// request's context for the handler's audit log (Caller).
func RequireIdentity(allowed []string, next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
			log.Warn("admin: refused a request without a verified client certificate", "remote", r.RemoteAddr)
			writeError(w, http.StatusForbidden, "a client certificate is required")
			return
		}
		ids := Identities(r.TLS.VerifiedChains[0][0])
		for _, id := range ids {
			if slices.Contains(allowed, id) {
				next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, "mtls "+id)))
				return
			}
		}
		shown := make([]string, len(ids))
		for i, id := range ids {
			shown[i] = bounded(id)
		}
		log.Warn("admin: refused a client certificate not in crl.admin.remote.allowedIdentities",
			"remote", r.RemoteAddr, "identities", shown, "path", bounded(r.URL.Path))
		writeError(w, http.StatusForbidden, "this client certificate's identity is not in "+
			"crl.admin.remote.allowedIdentities")
	})
}

// ClientTLS returns the TLS configuration of an admin client: certFile and keyFile are its certificate and
// key, caFile the CA certificates (PEM) that the remote listener's certificate must chain to.
func ClientTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("admin client certificate: %w", err)
	}
	pemCAs, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("admin server CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemCAs) {
		return nil, fmt.Errorf("admin server CA: %s holds no PEM certificate", caFile)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, RootCAs: pool}, nil
}
