package rotation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Store keeps a rotation's State. Every change is a compare-and-swap: Save writes only when the stored state
// is still at the version Load returned, else it fails with ErrConflict and the caller reads again.
type Store interface {
	// Load returns the state (idle when none is stored) and its version, an opaque string.
	Load(ctx context.Context) (*State, string, error)
	// Save writes s if the stored version is still version and returns the new version.
	Save(ctx context.Context, s *State, version string) (string, error)
}

// FileStore is the state in a file, for a single meshca: the version is the state's generation, and Save
// compares it under the lock beside the file (Lock).
type FileStore struct{ Path string }

// Load implements Store.
func (f FileStore) Load(context.Context) (*State, string, error) {
	s, err := Load(f.Path)
	if err != nil {
		return nil, "", err
	}
	return s, strconv.FormatUint(s.Generation, 10), nil
}

// Save implements Store.
func (f FileStore) Save(_ context.Context, s *State, version string) (string, error) {
	unlock, err := Lock(f.Path)
	if err != nil {
		return "", err
	}
	defer unlock()
	cur, err := Load(f.Path)
	if err != nil {
		return "", err
	}
	if strconv.FormatUint(cur.Generation, 10) != version {
		return "", fmt.Errorf("%w: the state file is at generation %d", ErrConflict, cur.Generation)
	}
	if err := Save(f.Path, s); err != nil {
		return "", err
	}
	return strconv.FormatUint(s.Generation, 10), nil
}

// stateKey is the ConfigMap key that holds the state.
const stateKey = "state.json"

// KubeStore is the state in a ConfigMap, for several replicas: the version is the ConfigMap's resourceVersion,
// and Save is an update with it, which the API server refuses (409) when another writer came first.
type KubeStore struct {
	Client    kubernetes.Interface
	Namespace string
	Name      string
}

// Load implements Store; a missing ConfigMap is an idle rotation at version "".
func (k KubeStore) Load(ctx context.Context) (*State, string, error) {
	cm, err := k.Client.CoreV1().ConfigMaps(k.Namespace).Get(ctx, k.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return Idle(), "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("rotation: read ConfigMap %s/%s (rotation.configMap): %w", k.Namespace, k.Name,
			err)
	}
	s, err := ParseState([]byte(cm.Data[stateKey]))
	if err != nil {
		return nil, "", fmt.Errorf("rotation: ConfigMap %s/%s key %s: %w", k.Namespace, k.Name, stateKey, err)
	}
	return s, cm.ResourceVersion, nil
}

// Save implements Store: a create when version is "", else an update at version.
func (k KubeStore) Save(ctx context.Context, s *State, version string) (string, error) {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return "", err
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: k.Namespace, Name: k.Name,
		ResourceVersion: version, Labels: map[string]string{"app.kubernetes.io/managed-by": "meshca"}},
		Data: map[string]string{stateKey: string(data)}}
	api := k.Client.CoreV1().ConfigMaps(k.Namespace)
	if version == "" {
		cm, err = api.Create(ctx, cm, metav1.CreateOptions{})
	} else {
		cm, err = api.Update(ctx, cm, metav1.UpdateOptions{})
	}
	switch {
	case apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err):
		return "", fmt.Errorf("%w: %w", ErrConflict, err)
	case err != nil:
		return "", fmt.Errorf("rotation: write ConfigMap %s/%s: %w", k.Namespace, k.Name, err)
	}
	return cm.ResourceVersion, nil
}

// Update reads the state from st, applies change and saves it, reading again and retrying on a conflict
// (up to a few times); change must be a pure function of the state it is given.
func Update(ctx context.Context, st Store, change func(*State) error) (*State, error) {
	var last error
	for attempt := 0; attempt < 5; attempt++ {
		s, version, err := st.Load(ctx)
		if err != nil {
			return nil, err
		}
		if err := change(s); err != nil {
			return nil, err
		}
		if _, err = st.Save(ctx, s, version); !errors.Is(err, ErrConflict) {
			return s, err
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 50 * time.Millisecond):
		}
	}
	return nil, last
}
