package rotation_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/metadata"
	pb "istio.io/api/security/v1alpha1"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/rotation"
)

// mesh is meshca serving a file backend on a cacerts directory, with a rotation controller on a state file.
type mesh struct {
	reg   *prometheus.Registry
	m     *catest.Meshca
	c     *rotation.Controller
	admin *rotation.Client
	roots []*x509.Certificate
}

// startMesh starts meshca with a rotation controller. warm says whether the controller has already seen a full
// certificate lifetime (as a meshca that has run for a day has); a restarted one has not.
func startMesh(t *testing.T, cacerts, statePath string, warm bool, roots ...*x509.Certificate) *mesh {
	t.Helper()
	policy := &ca.Policy{TrustDomain: catest.TrustDomain}
	reg := prometheus.NewRegistry()
	cfg := rotation.Config{StateFile: statePath, MaxLifetime: policy.EffectiveMaxTTL(), Manual: true,
		Logger: catest.DiscardLogger(), Registerer: reg}
	if warm {
		cfg.Started = time.Now().Add(-policy.EffectiveMaxTTL())
	}
	c, err := rotation.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := catest.StartMeshca(t, catest.MeshcaOptions{Policy: policy, Observer: c.Observer(nil),
		ExtraRootsFunc: c.ExtraRoots, WithdrawnRoots: c.WithdrawnRoots, LifetimeCap: c.LifetimeCap,
		Limits:   ca.Limits{PerCallerRate: -1},
		Backends: []ca.NamedBackend{{Name: "file", Backend: catest.FileBackend(t, cacerts, nil)}}})
	return &mesh{reg: reg, m: m, c: c, roots: roots, admin: serveAdmin(t, c)}
}

// serveAdmin serves c's admin API on loopback until the test ends and returns a client of it.
func serveAdmin(t *testing.T, c *rotation.Controller) *rotation.Client {
	t.Helper()
	l, err := rotation.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = rotation.Serve(ctx, l, rotation.Handler(c, catest.DiscardLogger()), catest.DiscardLogger())
	}()
	t.Cleanup(func() { cancel(); <-done })
	return &rotation.Client{Addr: l.Addr().String()}
}

// renew asks for a certificate as istio-agent does for default/sa and returns the root the leaf chains to (of
// roots) and the trust anchors taken from the last element, as istio-agent takes them.
func (h *mesh) renew(t *testing.T, sa string) (chainRoot *x509.Certificate, anchors []*x509.Certificate) {
	root, anchors, _ := h.renewLeaf(t, sa)
	return root, anchors
}

// renewLeaf is renew that also returns the leaf.
func (h *mesh) renewLeaf(t *testing.T, sa string) (chainRoot *x509.Certificate, anchors []*x509.Certificate,
	leaf *x509.Certificate) {
	t.Helper()
	chainRoot, anchors, leaf, err := h.tryRenew(t, sa)
	if err != nil {
		t.Fatal(err)
	}
	return chainRoot, anchors, leaf
}

// tryRenew is renewLeaf returning a failed request as an error, for checks made while cacerts changes (the file
// backend may refuse to sign while it holds a half-switched directory).
func (h *mesh) tryRenew(t *testing.T, sa string) (chainRoot *x509.Certificate, anchors []*x509.Certificate,
	leaf *x509.Certificate, err error) {
	t.Helper()
	id := fmt.Sprintf("spiffe://%s/ns/default/sa/%s", catest.TrustDomain, sa)
	csrPEM, _ := catest.WorkloadCSR(t, id)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+h.m.Token(t, "default", sa),
		"clusterid", authn.DefaultClusterID)
	resp, err := pb.NewIstioCertificateServiceClient(h.m.Dial(t)).CreateCertificate(ctx,
		&pb.IstioCertificateRequest{Csr: string(csrPEM), ValidityDuration: 3600})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("CreateCertificate for %s: %w", sa, err)
	}
	n := len(resp.CertChain)
	if n < 2 {
		t.Fatalf("a chain of %d elements", n)
	}
	anchors = parsePEM(t, resp.CertChain[n-1])
	leaf = parsePEM(t, resp.CertChain[0])[0]
	issuing := parsePEM(t, resp.CertChain[n-2])[0] // the file backend's intermediate, signed by a root
	for _, r := range h.roots {
		if issuing.CheckSignatureFrom(r) == nil {
			return r, anchors, leaf, nil
		}
	}
	t.Fatalf("the chain of %s ends at none of the test's roots", sa)
	return nil, nil, nil, nil
}

func parsePEM(t *testing.T, s string) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	rest := []byte(s)
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return out
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

func holds(anchors []*x509.Certificate, roots ...*x509.Certificate) bool {
	for _, r := range roots {
		found := false
		for _, a := range anchors {
			found = found || a.Equal(r)
		}
		if !found {
			return false
		}
	}
	return true
}

// step asks the admin API for action and returns the phase reached.
func (h *mesh) step(t *testing.T, action rotation.Action) (rotation.Phase, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := h.admin.Change(ctx, rotation.ChangeRequest{Action: action})
	if err != nil {
		return "", err
	}
	return st.State.Phase, nil
}

// TestRotationThroughGRPC takes three workloads through a full root rotation over CreateCertificate, driven
// through the admin API: start caps the leaf lifetime, the next root reaches every bundle while publishing,
// the gates hold until every workload has renewed, the state survives a restart of meshca, the old root
// leaves the responses while retiring and the rotation ends with only the new root.
func TestRotationThroughGRPC(t *testing.T) {
	cacerts, oldCA := catest.FileCA(t)
	newCA := genCA(t)
	statePath := filepath.Join(t.TempDir(), "rotation.json")
	h := startMesh(t, cacerts, statePath, true, oldCA.Root, newCA.Root)
	workloads := []string{"a", "b", "c"}
	for _, sa := range workloads {
		if root, anchors := h.renew(t, sa); !root.Equal(oldCA.Root) || len(anchors) != 1 {
			t.Fatalf("before the rotation %s got %d anchors; want only the old root", sa, len(anchors))
		}
	}

	ctx := context.Background()
	if _, err := h.admin.Change(ctx, rotation.ChangeRequest{Action: rotation.ActionStart, MaxLeafLifetime: "30m",
		NextRoot: string(newCA.RootPEM), OldRoot: string(oldCA.RootPEM)}); err != nil {
		t.Fatal(err)
	}
	_, anchors, leaf := h.renewLeaf(t, "a")
	if len(anchors) != 1 || leaf.NotAfter.Sub(leaf.NotBefore) > 31*time.Minute {
		t.Fatalf("staged: %d anchors and a leaf of %s; want the old root only and a leaf capped at 30m",
			len(anchors), leaf.NotAfter.Sub(leaf.NotBefore))
	}
	if ph, err := h.step(t, rotation.ActionAdvance); err != nil || ph != rotation.PhasePublishing {
		t.Fatalf("advance from staged: %s, %v", ph, err)
	}
	for i, sa := range workloads {
		if _, err := h.step(t, rotation.ActionAdvance); !errors.Is(err, rotation.ErrGateClosed) {
			t.Fatalf("advance with %d of 3 renewed: %v, want ErrGateClosed", i, err)
		}
		root, anchors := h.renew(t, sa)
		if !root.Equal(oldCA.Root) || !holds(anchors, oldCA.Root, newCA.Root) {
			t.Fatalf("publishing: %s must get both roots and a leaf from the old CA", sa)
		}
		if p := h.c.Progress(); p.HoldingNext != i+1 || p.Holders != 3 {
			t.Fatalf("after %d renewals: %d of %d hold the next root", i+1, p.HoldingNext, p.Holders)
		}
	}
	want := `
# HELP meshca_rotation_workloads Identities with an unexpired certificate, by whether their last trust bundle ` +
		`held the next root (bundle) and whether their leaf chains to it (leaf).
# TYPE meshca_rotation_workloads gauge
meshca_rotation_workloads{next_root="no",what="bundle"} 0
meshca_rotation_workloads{next_root="no",what="leaf"} 3
meshca_rotation_workloads{next_root="yes",what="bundle"} 3
meshca_rotation_workloads{next_root="yes",what="leaf"} 0
`
	if err := testutil.GatherAndCompare(h.reg, strings.NewReader(want), "meshca_rotation_workloads"); err != nil {
		t.Fatal(err)
	}

	// meshca restarts: the state is read back, the next root stays in every bundle, and the new tracker, which
	// has not seen a full lifetime, keeps the gate closed.
	h = startMesh(t, cacerts, statePath, false, oldCA.Root, newCA.Root)
	if _, anchors := h.renew(t, "a"); !holds(anchors, oldCA.Root, newCA.Root) {
		t.Fatal("after a restart the bundle lost a root")
	}
	if _, err := h.step(t, rotation.ActionAdvance); !errors.Is(err, rotation.ErrGateClosed) {
		t.Fatalf("advance right after a restart: %v, want ErrGateClosed", err)
	}
	h = startMesh(t, cacerts, statePath, true, oldCA.Root, newCA.Root)
	for _, sa := range workloads {
		h.renew(t, sa)
	}
	if ph, err := h.step(t, rotation.ActionAdvance); err != nil || ph != rotation.PhaseActivated {
		t.Fatalf("advance once every workload holds the next root: %s, %v", ph, err)
	}

	// The operator switches cacerts to the new CA; the file backend reloads.
	if err := newCA.WriteDir(cacerts); err != nil {
		t.Fatal(err)
	}
	catest.Eventually(t, 10*time.Second, "the file backend signs with the new CA", func() error {
		root, _, _, err := h.tryRenew(t, "a")
		if err == nil && !root.Equal(newCA.Root) {
			err = errors.New("still the old CA")
		}
		return err
	})
	if _, err := h.step(t, rotation.ActionAdvance); !errors.Is(err, rotation.ErrGateClosed) {
		t.Fatalf("advance with leaves from the old CA: %v, want ErrGateClosed", err)
	}
	for _, sa := range workloads[1:] {
		if root, anchors := h.renew(t, sa); !root.Equal(newCA.Root) || !holds(anchors, oldCA.Root, newCA.Root) {
			t.Fatalf("activated: %s must get both roots and a leaf from the new CA", sa)
		}
	}
	if p := h.c.Progress(); p.LeafNext != 3 {
		t.Fatalf("activated: %d of %d leaves chain to the new root, want 3", p.LeafNext, p.Holders)
	}
	if ph, err := h.step(t, rotation.ActionAdvance); err != nil || ph != rotation.PhaseRetiring {
		t.Fatalf("advance once every leaf chains to the new root: %s, %v", ph, err)
	}
	// cacerts may still list the old root: retiring withdraws it from the responses all the same.
	tmp := filepath.Join(cacerts, ".root-cert.pem.tmp")
	if err := os.WriteFile(tmp, append(append([]byte{}, newCA.RootPEM...), oldCA.RootPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(cacerts, "root-cert.pem")); err != nil {
		t.Fatal(err)
	}
	catest.Eventually(t, 10*time.Second, "retiring: the responses hold the new root only", func() error {
		_, anchors, _, err := h.tryRenew(t, "a")
		if err == nil && (len(anchors) != 1 || !anchors[0].Equal(newCA.Root)) {
			err = fmt.Errorf("%d anchors", len(anchors))
		}
		return err
	})
	if ph, err := h.step(t, rotation.ActionAdvance); err != nil || ph != rotation.PhaseIdle {
		t.Fatalf("advance from retiring: %s, %v", ph, err)
	}
	if err := newCA.WriteDir(cacerts); err != nil {
		t.Fatal(err)
	}
	catest.Eventually(t, 10*time.Second, "idle: only the new root, from cacerts", func() error {
		_, anchors, _, err := h.tryRenew(t, "a")
		if err == nil && (len(anchors) != 1 || !anchors[0].Equal(newCA.Root)) {
			err = fmt.Errorf("after the rotation the bundle has %d anchors; want only the new root", len(anchors))
		}
		return err
	})
	if _, _, leaf := h.renewLeaf(t, "b"); leaf.NotAfter.Sub(leaf.NotBefore) < 59*time.Minute {
		t.Fatalf("idle: the leaf lifetime is still capped (%s)", leaf.NotAfter.Sub(leaf.NotBefore))
	}
}
