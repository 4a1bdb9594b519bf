package loadtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/meshca/meshca/ca/catest"
	"github.com/meshca/meshca/internal/devtoken"
	"github.com/meshca/meshca/rotation"
)

// A run with pod claims reaches meshca's rotation tracker as one holder per pod, tracked by pod (not coarse);
// without them, every identity is one coarse holder.
func TestPodClaimsMakeDistinctHolders(t *testing.T) {
	tests := []struct {
		name         string
		pods         int
		holders      int
		coarse       int
		wantPodsSeen int
	}{
		{"five pods per identity are sixty holders tracked by pod", 5, 60, 0, 60},
		{"tokens without pod claims are one coarse holder per identity", 0, 12, 12, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := rotation.NewTracker(rotation.TrackerConfig{MaxLifetime: time.Hour})
			m := catest.StartMeshca(t, catest.MeshcaOptions{Observer: tr})
			cfg := config(m, 0, 0)
			cfg.Scenario, cfg.PodsPerIdentity, cfg.Concurrency = ScenarioStorm, tt.pods, 8
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.OK != tt.holders || res.Pods != tt.wantPodsSeen || res.Identities != 12 {
				t.Fatalf("%d ok of %d sent (%v), %d pods and %d identities reported; want %d ok", res.OK,
					res.Sent, res.Samples, res.Pods, res.Identities, tt.holders)
			}
			p := tr.Progress(1, rotation.PhasePublishing)
			if p.Holders != tt.holders || p.Coarse != tt.coarse || tr.Len() != tt.holders {
				t.Errorf("the tracker sees %d holders (%d coarse, %d records), want %d (%d coarse)", p.Holders,
					p.Coarse, tr.Len(), tt.holders, tt.coarse)
			}
		})
	}
}

// Every pod of a run has its own name and UID; an identity's pods share a name prefix and spread over nodes.
func TestPodsOfAnIdentityAreDistinct(t *testing.T) {
	c := Config{Namespaces: 4, ServiceAccounts: 5, PodsPerIdentity: 30}.withDefaults()
	base := devtoken.Claims{Namespace: "loadtest-1", ServiceAccount: "sa-2"}
	pods, err := c.podsOf(base, 7)
	if err != nil {
		t.Fatal(err)
	}
	names, uids, nodes := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, p := range pods {
		names[p.PodName], uids[p.PodUID], nodes[p.NodeName] = true, true, true
		if p.Namespace != base.Namespace || p.ServiceAccount != base.ServiceAccount ||
			!strings.HasPrefix(p.PodName, "sa-2-") || len(p.PodUID) != 36 {
			t.Errorf("pod %+v of %s/%s", p, base.Namespace, base.ServiceAccount)
		}
	}
	if len(names) != 30 || len(uids) != 30 || len(nodes) < 2 {
		t.Errorf("%d names, %d UIDs, %d nodes for 30 pods; want 30, 30 and several nodes", len(names),
			len(uids), len(nodes))
	}
	if one, _ := (Config{}).podsOf(base, 0); len(one) != 1 || one[0].PodName != "" || one[0].PodUID != "" {
		t.Errorf("without pods per identity: %+v, want the identity's claims alone", one)
	}
}
