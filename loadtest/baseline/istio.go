package baseline

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"net"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"istio.io/istio/pkg/security"
	istioca "istio.io/istio/security/pkg/pki/ca"
	caserver "istio.io/istio/security/pkg/server/ca"

	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca/authn"
)

// NewIstioCA is istiod's CA on the plugged-in cacerts in dir (the same files meshca's file backend signs
// with), as istiod builds it from /etc/cacerts: 24h default and 90 days maximum lifetime.
func NewIstioCA(dir string) (*istioca.IstioCA, error) {
	opts, err := istioca.NewPluggedCertIstioCAOptions(istioca.SigningCAFileBundle{
		RootCertFile:    filepath.Join(dir, file.RootCertFile),
		CertChainFiles:  []string{filepath.Join(dir, file.CertChainFile)},
		SigningCertFile: filepath.Join(dir, file.CACertFile),
		SigningKeyFile:  filepath.Join(dir, file.CAKeyFile),
	}, 24*time.Hour, 90*24*time.Hour, 2048)
	if err != nil {
		return nil, fmt.Errorf("baseline: istio CA options: %w", err)
	}
	c, err := istioca.NewIstioCA(opts)
	if err != nil {
		return nil, fmt.Errorf("baseline: istio CA: %w", err)
	}
	return c, nil
}

// JWTAuthenticator gives istiod's CA server the same authentication meshca does: a service-account JWT
// verified locally (meshca's authn.JWT, the same code and keys), in place of istiod's TokenReview call to an
// API server, so that both servers do the same work per request.
type JWTAuthenticator struct {
	JWT         *authn.JWT
	TrustDomain string
}

// AuthenticatorType implements security.Authenticator.
func (a *JWTAuthenticator) AuthenticatorType() string { return "MeshcaJWTAuthenticator" }

// Authenticate implements security.Authenticator: the bearer token's namespace and service account become
// the caller's one SPIFFE identity, as istiod's KubeJWTAuthenticator makes it.
func (a *JWTAuthenticator) Authenticate(ac security.AuthContext) (*security.Caller, error) {
	bearer := ac.Header("authorization")
	if len(bearer) != 1 || !strings.HasPrefix(bearer[0], "Bearer ") {
		return nil, errors.New("no bearer token")
	}
	req := &authn.Request{Token: strings.TrimPrefix(bearer[0], "Bearer ")}
	if c := ac.Header("clusterid"); len(c) == 1 {
		req.ClusterID = c[0]
	}
	c, err := a.JWT.Authenticate(ac.GrpcContext, req)
	if err != nil {
		return nil, err
	}
	return &security.Caller{AuthSource: security.AuthSourceIDToken,
		Identities:     []string{"spiffe://" + a.TrustDomain + "/ns/" + c.Namespace + "/sa/" + c.ServiceAccount},
		KubernetesInfo: security.KubernetesInfo{PodNamespace: c.Namespace, PodServiceAccount: c.ServiceAccount}}, nil
}

// NewIstioServer returns istiod's real gRPC CA server (security/pkg/server/ca) on c, with auth, serving TLS
// with a certificate for 127.0.0.1 and localhost that signer issues (ECDSA P-256, as meshca's own), the same
// TLS settings as meshca's.
func NewIstioServer(c *istioca.IstioCA, auth security.Authenticator, signer *CA) (*grpc.Server, error) {
	srv, err := caserver.New(c, 24*time.Hour, []security.Authenticator{auth}, nil)
	if err != nil {
		return nil, fmt.Errorf("baseline: istio CA server: %w", err)
	}
	cert, err := signer.servingCert()
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert},
		ClientAuth: tls.RequestClientCert}
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(tc)), grpc.MaxConcurrentStreams(1000))
	srv.Register(g)
	return g, nil
}

// servingCert issues a serving certificate for 127.0.0.1 and localhost.
func (c *CA) servingCert() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serial, NotBefore: now.Add(-time.Minute), NotAfter: now.Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.Cert, key.Public(), c.Key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("baseline: serving certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der, c.Cert.Raw}, PrivateKey: key}, nil
}
