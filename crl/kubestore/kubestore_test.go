package kubestore_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/crl"
	"github.com/meshca/meshca/crl/internal/crltest"
	"github.com/meshca/meshca/crl/internal/kubetest"
	"github.com/meshca/meshca/crl/kubestore"
)

func TestMain(m *testing.M) { os.Exit(catest.Main(m)) }

const secretName = "meshca-revocations"

// rules are the permissions the store needs in meshca's namespace (docs/revocation.md lists them for the
// manifests): create cannot be limited by name; the rest is limited to the one Secret.
var rules = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"create"}},
	{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{secretName},
		Verbs: []string{"get", "list", "watch", "update"}},
}

type fixture struct {
	k   *catest.Kube
	ns  string
	pki *crltest.PKI
	cfg func() kubernetes.Interface
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	k := catest.SharedKube(t)
	f := &fixture{k: k, ns: k.Namespace(t), pki: crltest.New(t, "kubestore")}
	rc := kubetest.Impersonate(t, k, f.ns, nil, rules, authorizationv1.ResourceAttributes{
		Namespace: f.ns, Resource: "secrets", Verb: "update", Name: secretName})
	f.cfg = func() kubernetes.Interface {
		c, err := kubernetes.NewForConfig(rc)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return f
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// replica is a store with its own client and a registry on it, as one meshca pod has.
func (f *fixture) replica(t *testing.T) (*kubestore.Store, *crl.Registry) {
	t.Helper()
	s, err := kubestore.New(context.Background(), kubestore.Config{Namespace: f.ns, Kube: f.cfg(), Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	r, err := crl.NewRegistry(context.Background(),
		crl.RegistryConfig{Store: s, Logger: discard(), FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return s, r
}

func TestTwoReplicasAgreeOnRevocationsAndCRLNumbers(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, a := f.replica(t)
	_, b := f.replica(t)
	ca := crl.IDOf(f.pki.Inter)
	const each = 20
	numbers := make([][]uint64, 2)
	errs := make(chan error, 2*each)
	var wg sync.WaitGroup
	start := time.Now()
	for i, r := range []*crl.Registry{a, b} {
		wg.Go(func() {
			for j := range each {
				res, err := r.Revoke(ctx, crl.RevokeRequest{Serial: big.NewInt(int64(1000*(i+1) + j)), CA: ca,
					NotAfter: time.Now().Add(time.Hour), Reason: crl.KeyCompromise})
				if err != nil {
					errs <- fmt.Errorf("replica %d, revocation %d: %w", i, j, err)
					return
				}
				numbers[i] = append(numbers[i], res.CRLNumber)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d concurrent revocations from 2 replicas in %s", 2*each, time.Since(start).Round(time.Millisecond))
	seen := map[uint64]bool{}
	for i, ns := range numbers {
		for j, n := range ns {
			if j > 0 && n <= ns[j-1] {
				t.Errorf("replica %d: CRL number %d after %d", i, n, ns[j-1])
			}
			if seen[n] {
				t.Errorf("CRL number %d given twice", n)
			}
			seen[n] = true
		}
	}
	// Each replica reads the store through its watch: once both have seen the last write, they build the same
	// CRL, listing every revocation.
	signer := crl.KeySigner{CA: f.pki.Inter, Key: f.pki.InterKey}
	catest.Eventually(t, 5*time.Second, "both replicas build the same complete CRL", func() error {
		var lists [2]*x509.RevocationList
		for i, r := range []*crl.Registry{a, b} {
			if err := r.Sync(ctx); err != nil {
				return err
			}
			c, err := r.Issue(ctx, f.pki.Inter, signer)
			if err != nil {
				return err
			}
			lists[i] = c.List
		}
		n1, n2 := len(lists[0].RevokedCertificateEntries), len(lists[1].RevokedCertificateEntries)
		if n1 != 2*each || n2 != 2*each {
			return fmt.Errorf("CRLs list %d and %d entries, want %d", n1, n2, 2*each)
		}
		if lists[0].Number.Cmp(lists[1].Number) != 0 || !lists[0].ThisUpdate.Equal(lists[1].ThisUpdate) {
			return fmt.Errorf("CRL numbers %s and %s", lists[0].Number, lists[1].Number)
		}
		return nil
	})
}

func TestRevocationReachesTheOtherReplica(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, a := f.replica(t)
	_, b := f.replica(t)
	go b.Run(ctx)
	ca, serial := crl.IDOf(f.pki.Inter), big.NewInt(77)
	changed := b.Changed()
	start := time.Now()
	if _, err := a.Revoke(ctx, crl.RevokeRequest{Serial: serial, CA: ca}); err != nil {
		t.Fatal(err)
	}
	catest.Eventually(t, 2*time.Second, "revocation seen by the other replica", func() error {
		if _, ok := b.Revoked(ca, serial); !ok {
			return errors.New("not revoked yet")
		}
		return nil
	})
	t.Logf("the other replica saw the revocation after %s", time.Since(start).Round(time.Millisecond))
	select {
	case <-changed:
	default:
		t.Error("the other replica's Changed did not fire")
	}
}

func TestRevokeByIdentityCoversOtherReplicasIssuances(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, a := f.replica(t)
	_, b := f.replica(t)
	id := "spiffe://cluster.local/ns/shop/sa/cart"
	ca := crl.IDOf(f.pki.Inter)
	record := func(r *crl.Registry, serial int64, at time.Time) {
		t.Helper()
		if err := r.Record(crl.Issuance{Serial: big.NewInt(serial), Identity: id, CA: ca,
			NotAfter: time.Now().Add(time.Hour), IssuedAt: at}); err != nil {
			t.Fatal(err)
		}
	}
	record(b, 1, time.Now())
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	record(b, 2, time.Now().Add(-time.Second)) // issued before the revocation, flushed after it
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := a.RevokeIdentity(ctx, crl.IdentityRevocation{Identity: id, Reason: crl.KeyCompromise})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Revoked) != 1 || res.Revoked[0].Serial.Int64() != 1 {
		t.Fatalf("revoked %v, want serial 1 (the other replica's flushed record)", res.Revoked)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Revoked(ca, big.NewInt(2)); !ok {
		t.Fatal("a certificate issued before the revocation by identity and recorded after it is not revoked")
	}
}

func TestCorruptSecretIsNeverOverwritten(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	bad := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secretName, Namespace: f.ns},
		Data: map[string][]byte{kubestore.DataKey: []byte("not gzip")}}
	if _, err := f.k.Client.CoreV1().Secrets(f.ns).Create(ctx, bad, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s, err := kubestore.New(ctx, kubestore.Config{Namespace: f.ns, Kube: f.cfg(), Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Load(ctx); !errors.Is(err, crl.ErrCorrupt) {
		t.Errorf("Load: %v, want ErrCorrupt", err)
	}
	_, err = s.Update(ctx, func(st *crl.State) (bool, error) { st.LastNumber++; return true, nil })
	if !errors.Is(err, crl.ErrCorrupt) {
		t.Errorf("Update: %v, want ErrCorrupt", err)
	}
	got, err := f.k.Client.CoreV1().Secrets(f.ns).Get(ctx, secretName, metav1.GetOptions{})
	if err != nil || string(got.Data[kubestore.DataKey]) != "not gzip" {
		t.Fatalf("the corrupt Secret was changed: %v", err)
	}
}

func TestDeletedSecretIsRecreatedFromTheLastState(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, a := f.replica(t)
	ca := crl.IDOf(f.pki.Inter)
	if _, err := a.Revoke(ctx, crl.RevokeRequest{Serial: big.NewInt(9), CA: ca}); err != nil {
		t.Fatal(err)
	}
	if err := f.k.Client.CoreV1().Secrets(f.ns).Delete(ctx, secretName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	catest.Eventually(t, 5*time.Second, "Secret recreated", func() error {
		if err := a.Flush(ctx); err != nil {
			return err
		}
		sec, err := f.k.Client.CoreV1().Secrets(f.ns).Get(ctx, secretName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		st, err := kubestore.Decode(sec.Data[kubestore.DataKey])
		if err != nil {
			return err
		}
		if len(st.Revoked) != 1 {
			return fmt.Errorf("%d entries", len(st.Revoked))
		}
		return nil
	})
}

func FuzzDecode(f *testing.F) {
	st := &crl.State{LastNumber: 3}
	good, err := kubestore.Encode(st)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte("\x1f\x8b"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := kubestore.Decode(data)
		if err != nil {
			if !errors.Is(err, crl.ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		again, err := kubestore.Encode(st)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kubestore.Decode(again); err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
	})
}
