package kubestore

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/meshca/meshca/crl"
	"github.com/meshca/meshca/internal/kubesync"
)

// DataKey is the Secret key holding the state.
const DataKey = "revocations.json.gz"

// maxSize keeps the Secret under the API server's 1 MiB object limit, with room for metadata.
const maxSize = 1000 << 10

// maxDecoded bounds the decompressed state, so a tampered Secret cannot exhaust memory.
const maxDecoded = 64 << 20

// Config configures a Store.
type Config struct {
	// Namespace and Name locate the Secret; Namespace is required (meshca's own), Name defaults to
	// "meshca-revocations".
	Namespace string `json:"namespace"`
	Name      string `json:"name,omitempty"`
	// MaxAttempts bounds the tries of one update under write conflicts. Default 20.
	MaxAttempts int `json:"maxAttempts,omitempty"`
	// SyncTimeout bounds the wait for the first read of the Secret. Default 30s.
	SyncTimeout time.Duration `json:"syncTimeout,omitempty"`

	// Kube is the Kubernetes client.
	Kube kubernetes.Interface `json:"-"`
	// Logger receives conflicts and recreations; default slog.Default().
	Logger *slog.Logger `json:"-"`
}

// Validate reports every problem with c that a configuration file can cause. It has no side effects.
func (c *Config) Validate() error {
	var errs []error
	if c.Namespace == "" {
		errs = append(errs, errors.New("kubestore: namespace is required: the namespace meshca runs in"))
	} else if msgs := validation.IsDNS1123Label(c.Namespace); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("kubestore: namespace %q: %s", c.Namespace, strings.Join(msgs, "; ")))
	}
	if c.Name != "" {
		if msgs := validation.IsDNS1123Subdomain(c.Name); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("kubestore: name %q: %s", c.Name, strings.Join(msgs, "; ")))
		}
	}
	if c.MaxAttempts < 0 || c.SyncTimeout < 0 {
		errs = append(errs, errors.New("kubestore: maxAttempts and syncTimeout must not be negative"))
	}
	return errors.Join(errs...)
}

// Store is a crl.Store on a Kubernetes Secret. Create it with New.
type Store struct {
	cfg     Config
	secrets interface {
		Get(context.Context, string, metav1.GetOptions) (*corev1.Secret, error)
		Create(context.Context, *corev1.Secret, metav1.CreateOptions) (*corev1.Secret, error)
		Update(context.Context, *corev1.Secret, metav1.UpdateOptions) (*corev1.Secret, error)
	}
	inf    cache.SharedIndexInformer
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	last     *crl.State     // last state read or written, with its resourceVersion as Revision
	written  *corev1.Secret // the Secret as this store last wrote it
	replaced string         // the resourceVersion that write replaced
	waiters  chan struct{}
}

var (
	_ crl.Store    = (*Store)(nil)
	_ crl.Notifier = (*Store)(nil)
)

// New starts watching the Secret and waits until it has been read once. Close stops the watch.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Kube == nil {
		return nil, errors.New("kubestore: a Kubernetes client is required")
	}
	if cfg.Name == "" {
		cfg.Name = "meshca-revocations"
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 20
	}
	if cfg.SyncTimeout == 0 {
		cfg.SyncTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	client := cfg.Kube.CoreV1().Secrets(cfg.Namespace)
	s := &Store{cfg: cfg, secrets: client, done: make(chan struct{})}
	s.inf = kubesync.NewInformer(client, kubesync.ByName(cfg.Name), &corev1.Secret{})
	notify := func(any) { s.notify() }
	_, _ = s.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: notify,
		UpdateFunc: func(_, o any) { notify(o) }, DeleteFunc: notify})
	ictx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	go func() {
		defer close(s.done)
		s.inf.RunWithContext(ictx)
	}()
	sctx, stop := context.WithTimeout(ctx, cfg.SyncTimeout)
	defer stop()
	if !cache.WaitForCacheSync(sctx.Done(), s.inf.HasSynced) {
		s.Close()
		return nil, fmt.Errorf("kubestore: reading Secret %s/%s: not synced within %s (meshca needs get, list and "+
			"watch on it): %w", cfg.Namespace, cfg.Name, cfg.SyncTimeout, sctx.Err())
	}
	return s, nil
}

// Close stops watching the Secret.
func (s *Store) Close() error {
	s.cancel()
	<-s.done
	return nil
}

// Changed returns a channel that is closed at the next change of the Secret seen by the watch.
func (s *Store) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waiters == nil {
		s.waiters = make(chan struct{})
	}
	return s.waiters
}

func (s *Store) notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waiters != nil {
		close(s.waiters)
		s.waiters = nil
	}
}

// Load returns the state as the watch last saw it.
func (s *Store) Load(ctx context.Context) (*crl.State, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	obj, ok, err := s.inf.GetStore().GetByKey(s.cfg.Namespace + "/" + s.cfg.Name)
	if err != nil {
		return nil, err
	}
	var sec *corev1.Secret
	if ok {
		sec = obj.(*corev1.Secret)
	}
	st, err := s.decode(sec)
	if err != nil {
		return nil, err
	}
	return st.Clone(), nil
}

// Update applies fn to the latest state and writes it with the resourceVersion it was read at, retrying with a
// fresh read on a conflict.
func (s *Store) Update(ctx context.Context, fn func(*crl.State) (bool, error)) (*crl.State, error) {
	var sec *corev1.Secret
	var err error
	for attempt := range s.cfg.MaxAttempts {
		if attempt == 0 {
			sec = s.cached()
		} else {
			if err := sleep(ctx, time.Duration(rand.IntN(5*attempt+1))*time.Millisecond); err != nil {
				return nil, err
			}
			if sec, err = s.secrets.Get(ctx, s.cfg.Name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
				sec = nil
			} else if err != nil {
				return nil, fmt.Errorf("kubestore: reading Secret %s/%s: %w", s.cfg.Namespace, s.cfg.Name, err)
			}
		}
		cur, err := s.decode(sec)
		if err != nil {
			return nil, err
		}
		next := cur.Clone()
		changed, err := fn(next)
		if err != nil {
			return nil, err
		}
		// Written even unchanged when the Secret was deleted: it is recreated from the last state seen.
		if !changed && (sec != nil || empty(cur)) {
			return cur.Clone(), nil
		}
		written, err := s.write(ctx, sec, next)
		switch {
		case apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) || apierrors.IsNotFound(err):
			continue // changed, created or deleted meanwhile: re-read
		case err != nil:
			return nil, err
		}
		next.Revision = written.ResourceVersion
		s.remember(next)
		s.mu.Lock()
		s.written, s.replaced = written, ""
		if sec != nil {
			s.replaced = sec.ResourceVersion
		}
		s.mu.Unlock()
		return next.Clone(), nil
	}
	return nil, fmt.Errorf("kubestore: %w: Secret %s/%s changed under %d consecutive writes", crl.ErrContended,
		s.cfg.Namespace, s.cfg.Name, s.cfg.MaxAttempts)
}

// cached returns the Secret as the watch last saw it or, when the watch still shows the version this store's
// last update replaced, as written: starting from the older version would only cost a conflict and a re-read.
// (A Secret the watch does not show is taken as missing: if this store just created it, the create conflicts
// and the retry reads it.)
func (s *Store) cached() *corev1.Secret {
	var sec *corev1.Secret
	if obj, ok, _ := s.inf.GetStore().GetByKey(s.cfg.Namespace + "/" + s.cfg.Name); ok {
		sec = obj.(*corev1.Secret)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.written != nil && sec != nil && sec.ResourceVersion == s.replaced {
		return s.written
	}
	return sec
}

func (s *Store) write(ctx context.Context, sec *corev1.Secret, st *crl.State) (*corev1.Secret, error) {
	data, err := Encode(st)
	if err != nil {
		return nil, err
	}
	if len(data) > maxSize {
		return nil, fmt.Errorf("kubestore: the revocation state takes %d bytes compressed, over what a Secret "+
			"holds: lower the registry's maxInventory", len(data))
	}
	opts := metav1.UpdateOptions{FieldManager: "meshca"}
	if sec == nil {
		n := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: s.cfg.Name, Namespace: s.cfg.Namespace,
				Labels: map[string]string{"app.kubernetes.io/managed-by": "meshca"}},
			Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{DataKey: data},
		}
		out, err := s.secrets.Create(ctx, n, metav1.CreateOptions{FieldManager: "meshca"})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			err = fmt.Errorf("kubestore: creating Secret %s/%s: %w", s.cfg.Namespace, s.cfg.Name, err)
		}
		return out, err
	}
	sec = sec.DeepCopy()
	if sec.Data == nil {
		sec.Data = map[string][]byte{}
	}
	sec.Data[DataKey] = data
	out, err := s.secrets.Update(ctx, sec, opts)
	if err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		err = fmt.Errorf("kubestore: updating Secret %s/%s: %w", s.cfg.Namespace, s.cfg.Name, err)
	}
	return out, err
}

// decode returns the state of sec. A missing Secret is the last state seen (it was deleted: recreate it
// rather than forget its revocations) or, the first time, an empty state.
func (s *Store) decode(sec *corev1.Secret) (*crl.State, error) {
	s.mu.Lock()
	last := s.last
	s.mu.Unlock()
	if sec == nil {
		if last == nil {
			return &crl.State{}, nil
		}
		if last.Revision != "" {
			s.cfg.Logger.Error("the revocation state Secret is gone; it is recreated from the last state seen",
				"secret", s.cfg.Namespace+"/"+s.cfg.Name)
		}
		st := last.Clone()
		st.Revision = ""
		return st, nil
	}
	if last != nil && last.Revision == sec.ResourceVersion {
		return last, nil
	}
	st, err := Decode(sec.Data[DataKey])
	if err != nil {
		return nil, fmt.Errorf("kubestore: Secret %s/%s key %s: %w", s.cfg.Namespace, s.cfg.Name, DataKey, err)
	}
	st.Revision = sec.ResourceVersion
	s.remember(st)
	return st, nil
}

func empty(st *crl.State) bool {
	return st.LastNumber == 0 && len(st.Revoked) == 0 && len(st.Issued) == 0 && len(st.Quarantine) == 0 &&
		len(st.Marks) == 0
}

func (s *Store) remember(st *crl.State) {
	s.mu.Lock()
	s.last = st.Clone()
	s.mu.Unlock()
}

// Encode returns the Secret's form of st: gzip-compressed crl.Marshal.
func Encode(st *crl.State) ([]byte, error) {
	data, err := crl.Marshal(st)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write(data); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Decode parses what Encode wrote. An empty value is an empty state; anything that does not parse wraps
// crl.ErrCorrupt.
func Decode(data []byte) (*crl.State, error) {
	if len(data) == 0 {
		return &crl.State{}, nil
	}
	r, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", crl.ErrCorrupt, err)
	}
	raw, err := io.ReadAll(io.LimitReader(r, maxDecoded+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", crl.ErrCorrupt, err)
	}
	if len(raw) > maxDecoded {
		return nil, fmt.Errorf("%w: over %d bytes uncompressed", crl.ErrCorrupt, maxDecoded)
	}
	return crl.Unmarshal(raw)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
