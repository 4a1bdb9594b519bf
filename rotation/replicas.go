package rotation

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// In a cluster every replica issues certificates and keeps its own tracker, so the leader must not open a gate
// on its own view alone. Each replica writes its verdict for the state it has read under its own key of a
// second ConfigMap (<configMap>-replicas, by JSON merge patch: replicas never conflict there); the leader opens
// a gate only when every replica's current report does, and a replica that stopped reporting holds the gates
// until every certificate it may have issued has expired.

// ReplicaReport is one replica's verdict on the state it last read.
type ReplicaReport struct {
	Generation uint64    `json:"generation"`
	Phase      Phase     `json:"phase"`
	At         time.Time `json:"at"`
	// Gate is empty when the advance keeps the invariant as this replica sees it, else why not.
	Gate string `json:"gate,omitempty"`
	// LeafNext counts the holders whose leaf chains to the next root (the rollback from publishing needs 0).
	LeafNext int `json:"leafNext"`
	Holders  int `json:"holders"`
	// Complete is the tracker's (Progress.Complete): a closed Gate is then down to laggards alone.
	Complete bool `json:"complete,omitempty"`
	// Lagging lists the laggards at the gate the advance needs (exchange.go), at most maxExchange; LaggingAll
	// says the list holds all of them.
	Lagging    []string `json:"lagging,omitempty"`
	LaggingAll bool     `json:"laggingAll,omitempty"`
	// Answers lists the other replicas' laggards for which this replica holds a later record that has what
	// the gate needs.
	Answers []string `json:"answers,omitempty"`
	// Laggards are the laggards this replica names (Progress.Laggards, its own records, answered ones left
	// out), for the other replicas' status (peers.go).
	Laggards []Laggard `json:"laggards,omitempty"`
	// ByNamespace, ByNode and CAs are this replica's counts, and Gates its gates (for their ETA), as in its
	// Progress.
	ByNamespace []Count        `json:"byNamespace,omitempty"`
	ByNode      []Count        `json:"byNode,omitempty"`
	CAs         []Count        `json:"cas,omitempty"`
	Gates       []GateProgress `json:"gates,omitempty"`
}

func (c *Controller) replicasName() string { return c.cfg.ConfigMap + "-replicas" }

// report writes this replica's verdict on s.
func (c *Controller) report(ctx context.Context, s *State) error {
	p := c.tracker.Progress(s.Generation, s.Phase)
	r := ReplicaReport{Generation: s.Generation, Phase: s.Phase, At: c.cfg.Now().UTC(), LeafNext: p.LeafNext,
		Holders: p.Holders, Complete: p.Complete}
	if err := s.Gate(p); err != nil && s.Phase != PhaseIdle {
		r.Gate = bounded(err.Error())
	}
	if others, _, err := c.readReports(ctx); err == nil {
		c.fill(&r, p, s, others)
		c.answers.Store(&answerSet{generation: s.Generation, set: c.answered(others, s)})
		c.peers.Store(c.peersOf(others, s))
		own := c.progressOf(s)
		r.Laggards, r.ByNamespace, r.ByNode, r.CAs, r.Gates = own.Laggards, own.ByNamespace, own.ByNode, own.CAs,
			own.Gates
	} else {
		c.log.Warn("rotation: the other replicas' reports were not read; their laggards stay unanswered",
			"error", err)
	}
	val, err := json.Marshal(r)
	if err != nil {
		return err
	}
	patch, err := json.Marshal(map[string]any{"data": map[string]string{c.cfg.Identity: string(val)}})
	if err != nil {
		return err
	}
	api := c.cfg.Client.CoreV1().ConfigMaps(c.cfg.LeaseNamespace)
	_, err = api.Patch(ctx, c.replicasName(), types.MergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		_, err = api.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: c.replicasName(),
			Namespace: c.cfg.LeaseNamespace}, Data: map[string]string{c.cfg.Identity: string(val)}},
			metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			_, err = api.Patch(ctx, c.replicasName(), types.MergePatchType, patch, metav1.PatchOptions{})
		}
	}
	if err != nil {
		return fmt.Errorf("rotation: write this replica's report to ConfigMap %s/%s: %w", c.cfg.LeaseNamespace,
			c.replicasName(), err)
	}
	return nil
}

// replicaProblems returns, for state s, why the other replicas keep the gate closed (forward) or the rollback
// from publishing refused (back); nil when none do. The leader's own verdict is not read from the ConfigMap.
func (c *Controller) replicaProblems(ctx context.Context, s *State, back bool) ([]string, error) {
	if c.cfg.Client == nil {
		return nil, nil
	}
	reports, unreadable, err := c.readReports(ctx)
	if err != nil {
		return nil, err
	}
	now := c.cfg.Now()
	stale := c.staleAfter()
	var out []string
	for _, id := range unreadable {
		out = append(out, fmt.Sprintf("replica %.64s: unreadable report", id))
	}
	var set map[string]bool
	for id, r := range reports {
		if id == c.cfg.Identity {
			continue
		}
		if !back && r.Gate != "" && set == nil {
			set = c.answered(reports, s)
		}
		switch {
		case now.Sub(r.At) > stale:
			if until := r.At.Add(c.cfg.MaxLifetime); now.Before(until) {
				out = append(out, fmt.Sprintf("replica %.64s stopped reporting at %s; the certificates it issued "+
					"may be valid until %s", id, r.At.Format(time.RFC3339), until.Format(time.RFC3339)))
			}
		case r.Generation != s.Generation:
			out = append(out, fmt.Sprintf("replica %.64s is behind: it has read generation %d, not %d", id,
				r.Generation, s.Generation))
		case back && r.LeafNext > 0:
			out = append(out, fmt.Sprintf("replica %.64s: %d holders have a leaf from the next CA", id, r.LeafNext))
		case !back && r.Gate != "" && !c.allAnswered(r, s, set):
			out = append(out, fmt.Sprintf("replica %.64s: %s", id, r.Gate))
		}
	}
	sort.Strings(out)
	return out, nil
}

// readReports returns the replicas' reports by identity, and the identities whose report is unreadable.
func (c *Controller) readReports(ctx context.Context) (map[string]ReplicaReport, []string, error) {
	cm, err := c.cfg.Client.CoreV1().ConfigMaps(c.cfg.LeaseNamespace).Get(ctx, c.replicasName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("rotation: read the replicas' reports: %w", err)
	}
	reports := map[string]ReplicaReport{}
	var unreadable []string
	for id, raw := range cm.Data {
		var r ReplicaReport
		if err := json.Unmarshal([]byte(raw), &r); err != nil {
			unreadable = append(unreadable, id)
			continue
		}
		reports[id] = r
	}
	return reports, unreadable, nil
}

// replicasGate is replicaProblems as an ErrGateClosed.
func (c *Controller) replicasGate(ctx context.Context, s *State, ch Change) error {
	back := ch.Action == ActionRollback
	if ch.Action != ActionAdvance && !(back && s.Phase == PhasePublishing && !s.SameKey) {
		return nil
	}
	if ch.Action == ActionAdvance && s.Phase == PhaseStaged {
		return nil
	}
	probs, err := c.replicaProblems(ctx, s, back)
	if err != nil {
		return err
	}
	if len(probs) > 0 {
		return fmt.Errorf("%w: %d other replicas say no: %s", ErrGateClosed, len(probs), probs[0])
	}
	return nil
}
