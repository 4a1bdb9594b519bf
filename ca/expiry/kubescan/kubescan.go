package kubescan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/meshca/meshca/ca/expiry"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// The objects scanned besides opt-in Secrets.
const (
	// KeyAndCertLabel marks Istio's workload certificate Secrets (istio.io/key-and-cert=true).
	KeyAndCertLabel = "istio.io/key-and-cert"
	// DefaultOptInSelector selects other Secrets, such as kubernetes.io/tls ones, whose owners ask for them to
	// be scanned.
	DefaultOptInSelector = "meshca.io/expiry-scan=true"
	// RootCertConfigMap and CRLConfigMap are the ConfigMaps meshca publishes in namespaces: the mesh roots
	// (key root-cert.pem) and the CRL (key ca-crl.pem).
	RootCertConfigMap = "istio-ca-root-cert"
	CRLConfigMap      = "istio-ca-crl"
	// DefaultCacertsSecret is the CA Secret scanned when Config.CacertsSecret is empty.
	DefaultCacertsSecret = "istio-system/cacerts"
	// DefaultSyncTimeout bounds the wait for the first lists when Config.SyncTimeout is zero.
	DefaultSyncTimeout = 60 * time.Second
)

// WithDefaults returns c with every unset setting at its default (for meshca config print --defaults).
func (c Config) WithDefaults() Config {
	if c.CacertsSecret == "" {
		c.CacertsSecret = DefaultCacertsSecret
	}
	if c.OptInSelector == "" {
		c.OptInSelector = DefaultOptInSelector
	}
	if c.SyncTimeout == 0 {
		c.SyncTimeout = DefaultSyncTimeout
	}
	return c
}

// Config configures a Scanner and List.
type Config struct {
	// CacertsSecret is the namespace/name of the CA Secret to scan; default "istio-system/cacerts". "-" scans
	// none.
	CacertsSecret string `json:"cacertsSecret,omitempty"`
	// OptInSelector is the label selector of further Secrets to scan (kubernetes.io/tls Secrets, for example);
	// default DefaultOptInSelector. "-" scans none.
	OptInSelector string `json:"optInSelector,omitempty"`
	// DisableKeyAndCert skips the istio.io/key-and-cert=true Secrets.
	DisableKeyAndCert bool `json:"disableKeyAndCert,omitempty"`
	// DisableConfigMaps skips the istio-ca-root-cert and istio-ca-crl ConfigMaps.
	DisableConfigMaps bool `json:"disableConfigMaps,omitempty"`
	// Namespace restricts the labelled Secrets and the ConfigMaps to one namespace; default every namespace
	// (meshca then needs list and watch on Secrets cluster-wide: manifests/components/expiry-scanner).
	Namespace string `json:"namespace,omitempty"`
	// SyncTimeout bounds the wait for the first list; default 60s.
	SyncTimeout time.Duration `json:"syncTimeout,omitempty"`

	// Client talks to the API server; required.
	Client kubernetes.Interface `json:"-"`
	// Inventory receives the sets; required by New, unused by List.
	Inventory *expiry.Inventory `json:"-"`
	// Logger receives errors; default slog.Default().
	Logger *slog.Logger `json:"-"`
}

// Validate reports every problem with c at once. It has no side effects.
func (c *Config) Validate() error {
	var errs []error
	if c.CacertsSecret != "" && c.CacertsSecret != "-" {
		if _, _, err := splitRef(c.CacertsSecret); err != nil {
			errs = append(errs, err)
		}
	}
	if c.OptInSelector != "" && c.OptInSelector != "-" {
		if _, err := labels.Parse(c.OptInSelector); err != nil {
			errs = append(errs, fmt.Errorf("kubescan: optInSelector %q: %w", bounded(c.OptInSelector), err))
		}
	}
	if c.Namespace != "" {
		if msgs := validation.IsDNS1123Label(c.Namespace); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("kubescan: namespace %q: %s", bounded(c.Namespace), msgs[0]))
		}
	}
	if c.SyncTimeout < 0 {
		errs = append(errs, fmt.Errorf("kubescan: syncTimeout %s is negative", c.SyncTimeout))
	}
	return errors.Join(errs...)
}

func splitRef(ref string) (ns, name string, err error) {
	ns, name, ok := strings.Cut(ref, "/")
	if !ok || len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 {
		return "", "", fmt.Errorf("kubescan: cacertsSecret %q is not <namespace>/<name>", bounded(ref))
	}
	return ns, name, nil
}

func bounded(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}

// watched is one kind of object the scanner follows: a list/watch with its selectors.
type watched struct {
	what      string // for logs and problems
	configMap bool
	namespace string
	options   func(*metav1.ListOptions)
}

// targets returns what cfg asks to scan.
func (c *Config) targets() []watched {
	var out []watched
	byLabel := func(sel string) func(*metav1.ListOptions) {
		return func(o *metav1.ListOptions) { o.LabelSelector = sel }
	}
	byName := func(name string) func(*metav1.ListOptions) {
		sel := fields.OneTermEqualSelector("metadata.name", name).String()
		return func(o *metav1.ListOptions) { o.FieldSelector = sel }
	}
	if !c.DisableKeyAndCert {
		sel := KeyAndCertLabel + "=true"
		out = append(out, watched{what: "secrets " + sel, namespace: c.Namespace, options: byLabel(sel)})
	}
	if sel := c.OptInSelector; sel != "-" {
		if sel == "" {
			sel = DefaultOptInSelector
		}
		out = append(out, watched{what: "secrets " + sel, namespace: c.Namespace, options: byLabel(sel)})
	}
	if ref := c.CacertsSecret; ref != "-" {
		if ref == "" {
			ref = DefaultCacertsSecret
		}
		ns, name, _ := splitRef(ref)
		out = append(out, watched{what: "secret " + ref, namespace: ns, options: byName(name)})
	}
	if !c.DisableConfigMaps {
		for _, name := range []string{RootCertConfigMap, CRLConfigMap} {
			out = append(out, watched{what: "configmaps " + name, configMap: true, namespace: c.Namespace,
				options: byName(name)})
		}
	}
	return out
}

func (w watched) listWatch(client kubernetes.Interface) *cache.ListWatch {
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			w.options(&o)
			if w.configMap {
				return client.CoreV1().ConfigMaps(w.namespace).List(ctx, o)
			}
			return client.CoreV1().Secrets(w.namespace).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			w.options(&o)
			if w.configMap {
				return client.CoreV1().ConfigMaps(w.namespace).Watch(ctx, o)
			}
			return client.CoreV1().Secrets(w.namespace).Watch(ctx, o)
		},
	}
}

// setOf scans a Secret or ConfigMap.
func setOf(obj any) (*expiry.Set, bool) {
	switch o := obj.(type) {
	case *corev1.Secret:
		return expiry.ParseSet(expiry.Source{Kind: expiry.KindSecret, Namespace: o.Namespace, Name: o.Name}, o.Data),
			true
	case *corev1.ConfigMap:
		files := make(map[string][]byte, len(o.Data))
		for k, v := range o.Data {
			files[k] = []byte(v)
		}
		return expiry.ParseSet(expiry.Source{Kind: expiry.KindConfigMap, Namespace: o.Namespace, Name: o.Name}, files),
			true
	}
	return nil, false
}

// sourceOf is the Source of a Secret or ConfigMap, also from a deletion's last known state.
func sourceOf(obj any) (expiry.Source, bool) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	switch o := obj.(type) {
	case *corev1.Secret:
		return expiry.Source{Kind: expiry.KindSecret, Namespace: o.Namespace, Name: o.Name}, true
	case *corev1.ConfigMap:
		return expiry.Source{Kind: expiry.KindConfigMap, Namespace: o.Namespace, Name: o.Name}, true
	}
	return expiry.Source{}, false
}

// stripKeys is the informers' transform: cached Secrets keep the public half of their private keys only, and
// no data that holds no PEM.
func stripKeys(obj any) (any, error) {
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return obj, nil
	}
	for k, v := range s.Data {
		if !bytes.Contains(v, []byte("-----BEGIN ")) {
			delete(s.Data, k)
			continue
		}
		s.Data[k], _ = expiry.StripPrivateKeys(v)
	}
	s.StringData = nil
	s.ManagedFields = nil
	s.Annotations = nil // kubectl's last-applied-configuration may hold the whole Secret
	return s, nil
}
