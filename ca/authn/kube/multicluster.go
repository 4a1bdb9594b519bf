package kube

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/internal/compliance"
	"github.com/meshca/meshca/internal/logsafe"
)

// RemoteSecretLabel marks Secrets that hold kubeconfigs of remote clusters, as istiod's remote secrets
// (istioctl create-remote-secret): each data key is a cluster ID, its value a kubeconfig for that cluster.
const RemoteSecretLabel = "istio/multiCluster"

// MultiClusterConfig configures MultiCluster.
type MultiClusterConfig struct {
	// Client reads the remote secrets from the local cluster; it needs list and watch on Secrets in Namespace.
	Client kubernetes.Interface
	// Namespace holds the remote secrets, e.g. istio-system.
	Namespace string
	// LocalClusterID is the local cluster's ID. Default authn.DefaultClusterID.
	LocalClusterID string
	// Local authenticates tokens of the local cluster, e.g. a TokenReview authenticator on Client.
	Local authn.Authenticator
	// Review is the template for remote clusters' TokenReview authenticators (audiences, cache bounds, clock,
	// logger); Client and ClusterID are set per cluster.
	Review TokenReviewConfig
	// Limit, when set, sets the client-side rate limits of each remote cluster's client (Config.Limit).
	Limit func(*rest.Config)
	// TLSPolicy is the COMPLIANCE_POLICY every remote cluster's API-server client follows (WithPolicy), as the
	// local cluster's does.
	TLSPolicy compliance.Policy
	// SyncTimeout bounds the initial list of secrets in Start. Default 60s.
	SyncTimeout time.Duration
	Logger      *slog.Logger
}

// Validate reports every problem with c at once. It has no side effects.
func (c *MultiClusterConfig) Validate() error {
	var errs []error
	if c.Client == nil {
		errs = append(errs, errors.New("kube: multicluster: a Kubernetes client for the local cluster is required"))
	}
	if c.Namespace == "" {
		errs = append(errs, errors.New("kube: multicluster: the namespace of the remote secrets is required "+
			"(e.g. istio-system)"))
	}
	if c.Local == nil {
		errs = append(errs, errors.New("kube: multicluster: an authenticator for the local cluster is required"))
	}
	if c.SyncTimeout < 0 {
		errs = append(errs, errors.New("kube: multicluster: sync timeout must not be negative"))
	}
	return errors.Join(errs...)
}

// MultiCluster routes each token to the cluster named by the request's clusterid (empty: the local cluster)
// and has that cluster's API server review it. Remote clusters come from kubeconfigs in Secrets labelled
// istio/multiCluster=true in one namespace; Secrets added, changed or removed take effect at once.
type MultiCluster struct {
	cfg MultiClusterConfig

	mu       sync.RWMutex
	clusters map[string]*remoteCluster // cluster ID → remote cluster
	bySecret map[string][]string       // "<namespace>/<name>" → cluster IDs it provides

	secrets cache.SharedIndexInformer
	factory informers.SharedInformerFactory
}

type remoteCluster struct {
	secret string
	sum    [32]byte // of the kubeconfig, to keep the authenticator (and its cache) when nothing changed
	auth   *TokenReview
	err    error // the kubeconfig could not be used
}

// NewMultiCluster returns a MultiCluster; Start it before use.
func NewMultiCluster(cfg MultiClusterConfig) (*MultiCluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.LocalClusterID == "" {
		cfg.LocalClusterID = authn.DefaultClusterID
	}
	if cfg.SyncTimeout == 0 {
		cfg.SyncTimeout = 60 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Review.Logger == nil {
		cfg.Review.Logger = cfg.Logger
	}
	m := &MultiCluster{cfg: cfg, clusters: map[string]*remoteCluster{}, bySecret: map[string][]string{}}
	m.factory = informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0, informers.WithNamespace(cfg.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = RemoteSecretLabel + "=true" }))
	m.secrets = m.factory.Core().V1().Secrets().Informer()
	_, err := m.secrets.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { m.update(obj) },
		UpdateFunc: func(_, obj any) { m.update(obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if s, ok := obj.(*corev1.Secret); ok {
				m.apply(s.Namespace+"/"+s.Name, nil)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("kube: multicluster: %w", err)
	}
	return m, nil
}

// Start watches the remote secrets until ctx ends, and waits at most SyncTimeout for the first list.
func (m *MultiCluster) Start(ctx context.Context) error {
	m.factory.Start(ctx.Done())
	wctx, cancel := context.WithTimeout(ctx, m.cfg.SyncTimeout)
	defer cancel()
	if !cache.WaitForCacheSync(wctx.Done(), m.secrets.HasSynced) {
		return fmt.Errorf("kube: multicluster: remote secrets in %s not listed after %s: check that meshca may "+
			"list and watch Secrets there", m.cfg.Namespace, m.cfg.SyncTimeout)
	}
	return nil
}

// Clusters returns the IDs of the clusters whose tokens are accepted, the local one first.
func (m *MultiCluster) Clusters() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var ids []string
	for id, c := range m.clusters {
		if c.err == nil {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return append([]string{m.cfg.LocalClusterID}, ids...)
}

// Authenticate implements authn.Authenticator.
func (m *MultiCluster) Authenticate(ctx context.Context, req *authn.Request) (*authn.Caller, error) {
	if req.Token == "" {
		return nil, authn.ErrNoCredential
	}
	id := req.ClusterID
	if id == "" || id == m.cfg.LocalClusterID {
		caller, err := m.cfg.Local.Authenticate(ctx, req)
		if caller != nil {
			caller.ClusterID = m.cfg.LocalClusterID
		}
		return caller, err
	}
	m.mu.RLock()
	c := m.clusters[id]
	m.mu.RUnlock()
	if c == nil {
		// The caller is not authenticated: it learns neither the clusters meshca knows nor where their
		// secrets live; the operator finds both in the log.
		m.cfg.Logger.Debug("token for an unknown cluster refused", "cluster", logsafe.String(id),
			"known", m.Clusters(), "remote_secrets_namespace", m.cfg.Namespace)
		return nil, fmt.Errorf("%w: the clusterid header names a cluster meshca does not know: fix the agent's "+
			"cluster ID, or add the cluster's remote secret (labelled %s=true)", authn.ErrUnauthenticated,
			RemoteSecretLabel)
	}
	if c.err != nil {
		return nil, fmt.Errorf("%w: cluster %q: the kubeconfig in Secret %s is unusable: %v", authn.ErrUnavailable, id,
			c.secret, c.err)
	}
	return c.auth.Authenticate(ctx, req)
}

func (m *MultiCluster) update(obj any) {
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return
	}
	m.apply(s.Namespace+"/"+s.Name, s.Data)
}

// apply makes the clusters of one secret those in data (nil: the secret is gone). Informer handlers run one
// at a time, so apply needs the lock only against Authenticate.
func (m *MultiCluster) apply(secret string, data map[string][]byte) {
	log := m.cfg.Logger.With("secret", secret)
	next := map[string]*remoteCluster{}
	for id, kubeconfig := range data {
		if id == m.cfg.LocalClusterID {
			log.Warn("remote secret names the local cluster's ID; ignored", "cluster", id)
			continue
		}
		m.mu.RLock()
		old := m.clusters[id]
		m.mu.RUnlock()
		if old != nil && old.secret != secret {
			log.Warn("cluster ID already provided by another remote secret; ignored", "cluster", id,
				"other_secret", old.secret)
			continue
		}
		sum := sha256.Sum256(kubeconfig)
		if old != nil && old.sum == sum {
			next[id] = old
			continue
		}
		c := &remoteCluster{secret: secret, sum: sum}
		c.auth, c.err = m.newReviewer(id, kubeconfig)
		if c.err != nil {
			log.Error("remote cluster unusable; its tokens will be refused", "cluster", id, "error", c.err)
		} else {
			log.Info("remote cluster added", "cluster", id)
		}
		next[id] = c
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range m.bySecret[secret] {
		if _, keep := next[id]; !keep {
			delete(m.clusters, id)
			log.Info("remote cluster removed", "cluster", id)
		}
	}
	maps.Copy(m.clusters, next)
	if len(next) == 0 {
		delete(m.bySecret, secret)
	} else {
		m.bySecret[secret] = slices.Collect(maps.Keys(next))
	}
}

func (m *MultiCluster) newReviewer(id string, kubeconfig []byte) (*TokenReview, error) {
	cfg, err := clientcmd.Load(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("parsing kubeconfig: %w", err)
	}
	if err := checkRemoteKubeconfig(cfg); err != nil {
		return nil, err
	}
	rc, err := clientcmd.NewDefaultClientConfig(*cfg, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	if m.cfg.Limit != nil {
		m.cfg.Limit(rc)
	}
	if err := WithPolicy(rc, m.cfg.TLSPolicy); err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	rcfg := m.cfg.Review
	rcfg.Client, rcfg.ClusterID = client, id
	return NewTokenReview(rcfg)
}

// checkRemoteKubeconfig refuses what a Secret's author could use against meshca itself, as istiod does for its
// remote secrets: exec and auth-provider plugins (commands run in meshca's container) and file references
// (tokenFile could send meshca's own token elsewhere). Remote secrets carry their credentials inline.
func checkRemoteKubeconfig(cfg *clientcmdapi.Config) error {
	var errs []error
	for name, a := range cfg.AuthInfos {
		if a.Exec != nil || a.AuthProvider != nil {
			errs = append(
				errs,
				fmt.Errorf("user %q uses an exec or auth-provider plugin, not allowed in remote secrets",
					name),
			)
		}
		if a.TokenFile != "" || a.ClientCertificate != "" || a.ClientKey != "" {
			errs = append(errs, fmt.Errorf("user %q refers to files; put the token or client certificate inline", name))
		}
	}
	for name, c := range cfg.Clusters {
		if c.CertificateAuthority != "" {
			errs = append(errs, fmt.Errorf("cluster %q refers to a CA file; use certificate-authority-data", name))
		}
	}
	return errors.Join(errs...)
}
