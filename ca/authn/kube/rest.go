package kube

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/internal/compliance"
)

// LoadRESTConfig returns the configuration for reaching a Kubernetes API server: from the kubeconfig file at
// path, or, when path is empty, the pod's in-cluster service-account configuration.
func LoadRESTConfig(path string) (*rest.Config, error) {
	if path == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf(
				"kube: in-cluster Kubernetes config (set a kubeconfig when running outside a pod): %w",
				err,
			)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("kube: kubeconfig %s: %w", path, err)
	}
	return cfg, nil
}

// NewAPIServerKeys returns the key set of a cluster's service-account token issuer, fetched from the API
// server's own OIDC discovery (/.well-known/openid-configuration, then /openid/v1/jwks) with cfg's CA and
// credentials. issuer is the cluster's --service-account-issuer; the discovery document must name it. opts
// may set refresh intervals and a logger; its Issuer, DiscoveryURL and HTTPClient are filled in here.
func NewAPIServerKeys(cfg *rest.Config, issuer string, opts authn.RemoteKeysConfig) (*authn.RemoteKeys, error) {
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("kube: HTTP client for the API server: %w", err)
	}
	host, err := apiServerURL(cfg)
	if err != nil {
		return nil, err
	}
	opts.Issuer, opts.DiscoveryURL, opts.HTTPClient = issuer, host, client
	return authn.NewRemoteKeys(opts)
}

func apiServerURL(cfg *rest.Config) (string, error) {
	u, _, err := rest.DefaultServerUrlFor(cfg)
	if err != nil {
		return "", fmt.Errorf("kube: API server URL: %w", err)
	}
	return u.String(), nil
}

// WithPolicy makes the API-server client c follow the COMPLIANCE_POLICY p: client-go builds its TLS
// configuration from files and has no hook for groups or versions, so under a policy WithPolicy builds the
// transport itself from the same settings (client certificates and CA included) and clears the file options
// client-go refuses beside a custom transport. Exec credential plugins that return client certificates are
// not supported under a policy; bearer tokens and exec tokens are. With compliance.None, or for plain HTTP,
// c is left as it is.
func WithPolicy(c *rest.Config, p compliance.Policy) error {
	if c == nil || p == compliance.None {
		return nil
	}
	tc, err := rest.TLSConfigFor(c)
	if err != nil {
		return fmt.Errorf("kube: TLS configuration of the API-server client: %w", err)
	}
	if tc == nil { // plain HTTP: nothing to restrict
		return nil
	}
	p.Apply(tc)
	proxy := c.Proxy
	if proxy == nil {
		proxy = http.ProxyFromEnvironment
	}
	c.Transport = &http.Transport{Proxy: proxy, TLSClientConfig: tc, ForceAttemptHTTP2: true,
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second, MaxIdleConnsPerHost: 25, IdleConnTimeout: 90 * time.Second}
	// client-go refuses a custom transport together with TLS options: they are in tc now.
	c.TLSClientConfig = rest.TLSClientConfig{}
	return nil
}
