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
