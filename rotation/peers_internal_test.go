package rotation

import (
	"slices"
	"testing"
	"time"
)

// withPeers names the other replicas' laggards beside this replica's, once each, overdue first and then the
// latest expected renewal, and only for the generation they were read for.
func TestWithPeersNamesEveryReplicasLaggardsOnce(t *testing.T) {
	at := time.Unix(1_900_000_000, 0).UTC()
	lag := func(name string, overdue bool, next int, replica string) Laggard {
		return Laggard{Identity: name, Kind: HolderPod, Namespace: "default", Overdue: overdue,
			NextRenewal: at.Add(time.Duration(next) * time.Minute), Replica: replica}
	}
	own := &Progress{Generation: 7, Laggards: []Laggard{lag("a", true, 1, ""), lag("b", false, 5, "")}}
	peers := &peerLaggards{generation: 7, list: []Laggard{lag("b", false, 9, "meshca-1"), lag("c", true, 3, "meshca-1"),
		lag("d", false, 8, "meshca-2")}}
	got := withPeers(own, peers)
	var names []string
	for _, l := range got.Laggards {
		names = append(names, l.Identity+"@"+l.Replica)
	}
	if want := []string{"c@meshca-1", "a@", "d@meshca-2", "b@"}; !slices.Equal(names, want) {
		t.Fatalf("laggards %v, want %v", names, want)
	}
	if len(own.Laggards) != 2 {
		t.Fatal("withPeers changed this replica's own progress")
	}
	peers.generation = 6
	if p := withPeers(own, peers); p != own {
		t.Fatal("laggards read for another generation were added")
	}
}

// withPeers sums the counts by namespace, node and CA, and takes each gate's latest ETA and Latest, without
// touching the gates' holder counts.
func TestWithPeersSumsCountsAndTakesTheLatestETA(t *testing.T) {
	at := time.Unix(1_900_000_000, 0).UTC()
	own := &Progress{Generation: 3, At: at,
		ByNamespace: []Count{{"default", 2}, {"pay", 1}}, ByNode: []Count{{"node-a", 3}},
		CAs: []Count{{"old", 10}, {"new", 5}},
		Gates: []GateProgress{{Name: GateBundle, Holders: 15, Done: 12, ETA: at.Add(time.Minute),
			Latest: at.Add(time.Hour)}}}
	peers := &peerLaggards{generation: 3,
		byNamespace: []Count{{"pay", 4}}, byNode: []Count{{"node-b", 4}}, cas: []Count{{"old", 1}, {"new", 7}},
		gates: []GateProgress{{Name: GateBundle, ETA: at.Add(10 * time.Minute), Latest: at.Add(30 * time.Minute)}}}
	got := withPeers(own, peers)
	if want := []Count{{"pay", 5}, {"default", 2}}; !slices.Equal(got.ByNamespace, want) {
		t.Errorf("by namespace %v, want %v", got.ByNamespace, want)
	}
	if want := []Count{{"node-b", 4}, {"node-a", 3}}; !slices.Equal(got.ByNode, want) {
		t.Errorf("by node %v, want %v", got.ByNode, want)
	}
	if want := []Count{{"new", 12}, {"old", 11}}; !slices.Equal(got.CAs, want) {
		t.Errorf("by CA %v, want %v", got.CAs, want)
	}
	g := got.Gates[0]
	if !g.ETA.Equal(at.Add(10*time.Minute)) || !g.Latest.Equal(at.Add(time.Hour)) || g.Holders != 15 || g.Done != 12 {
		t.Errorf("gate %+v; want the later ETA (10m), the later Latest (1h), the own counts", g)
	}
	if own.Gates[0].ETA != at.Add(time.Minute) || len(own.ByNamespace) != 2 || own.ByNamespace[1].Count != 1 {
		t.Error("withPeers changed this replica's own progress")
	}
}

// peersOf takes the laggards of the other replicas' current reports only: not this replica's own report (it
// may be older than its records) and not a report for another generation or one gone stale.
func TestPeersOfSkipsItsOwnAndStaleReports(t *testing.T) {
	now := time.Unix(1_900_000_000, 0).UTC()
	c := &Controller{cfg: Config{Identity: "meshca-0", PollInterval: 5 * time.Second,
		Now: func() time.Time { return now }}}
	s := &State{Generation: 4}
	lag := func(name string) []Laggard { return []Laggard{{Identity: name, Kind: HolderPod}} }
	others := map[string]ReplicaReport{
		"meshca-0": {Generation: 4, At: now, Laggards: lag("mine-old")},
		"meshca-1": {Generation: 4, At: now.Add(-time.Second), Laggards: lag("seen-by-1")},
		"meshca-2": {Generation: 3, At: now, Laggards: lag("old-generation")},
		"meshca-3": {Generation: 4, At: now.Add(-time.Hour), Laggards: lag("stale")},
	}
	pl := c.peersOf(others, s)
	if len(pl.list) != 1 || pl.list[0].Identity != "seen-by-1" || pl.list[0].Replica != "meshca-1" {
		t.Fatalf("peer laggards %+v, want only seen-by-1 from meshca-1", pl.list)
	}
}
