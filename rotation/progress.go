package rotation

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"
)

// Progress is a running meshca's report on a rotation, written next to the state file (ProgressPath) and read
// by `meshca rotation status|advance`.
type Progress struct {
	// Generation and Phase are those of the state the report was computed for; At is when.
	Generation uint64    `json:"generation"`
	Phase      Phase     `json:"phase"`
	At         time.Time `json:"at"`
	// Holders counts holders of a trust bundle with an unexpired certificate; HoldingNext of them last
	// received a bundle with the next root, and LeafNext hold a leaf that chains to it.
	Holders     int `json:"holders"`
	HoldingNext int `json:"holdingNext"`
	LeafNext    int `json:"leafNext"`
	// Coarse counts the holders tracked by identity only (no pod claims in their token).
	Coarse int `json:"coarse,omitempty"`
	// Complete is whether the tracker has seen every unexpired certificate: it has run for a full maximum
	// lifetime and dropped none. CompleteAt is when it will be.
	Complete   bool      `json:"complete"`
	CompleteAt time.Time `json:"completeAt"`
	// Gates reports each gate: what share of the holders have what it needs, and when it should open.
	Gates []GateProgress `json:"gates,omitempty"`
	// Laggards names some of the holders that hold up the phase's gate, overdue ones first; ByNamespace and
	// ByNode count all of them where they are (the largest groups).
	Laggards    []Laggard `json:"laggards,omitempty"`
	ByNamespace []Count   `json:"byNamespace,omitempty"`
	ByNode      []Count   `json:"byNode,omitempty"`
	// CAs counts the unexpired leaves by the CA that issued them.
	CAs []Count `json:"cas,omitempty"`

	// lagging are the laggards at the gate the phase's advance needs (exchangeGate), at most maxExchange, for
	// the other replicas to answer (exchange.go).
	lagging        []holderRef
	laggingOverdue []bool
}

// GateProgress is one gate's progress: Done of Holders have what it needs; of the others, Lagging will
// renew in time and Overdue have let their renewal time pass (they hold the gate until their certificate
// expires).
type GateProgress struct {
	// Name is "bundle" (the next root is in the holder's trust bundle) or "leaf" (the holder's leaf chains to
	// the next root); Active says it is the gate the phase waits for.
	Name    string `json:"name"`
	Active  bool   `json:"active,omitempty"`
	Holders int    `json:"holders"`
	Done    int    `json:"done"`
	Lagging int    `json:"lagging"`
	Overdue int    `json:"overdue"`
	// ETA is when the gate should open: every lagging holder renewed at its expected time and every overdue
	// one's certificate expired, and the tracker complete. Latest is when it opens at the latest (the last
	// laggard's certificate expires). Both are At when the gate is open.
	ETA    time.Time `json:"eta,omitzero"`
	Latest time.Time `json:"latest,omitzero"`
}

// Percent is the share of holders that have what the gate needs, 100 with no holders.
func (g GateProgress) Percent() float64 {
	if g.Holders == 0 {
		return 100
	}
	return 100 * float64(g.Done) / float64(g.Holders)
}

// What says what the gate needs, for "97.3 % of holders <What>".
func (g GateProgress) What() string {
	if g.Name == GateLeaf {
		return "hold a leaf from the new CA"
	}
	return "hold the new root"
}

// Gate names.
const (
	GateBundle = "bundle"
	GateLeaf   = "leaf"
)

// Laggard is a holder that holds up the gate.
type Laggard struct {
	// Identity is the holder's name: the pod name (Kind pod), the ztunnel pod and the identity it acts for
	// (ztunnel), or the SPIFFE ID (identity).
	Identity  string     `json:"identity"`
	Kind      HolderKind `json:"kind,omitempty"`
	Namespace string     `json:"namespace,omitempty"`
	Node      string     `json:"node,omitempty"`
	// LastRenewal is its latest issuance, NextRenewal when it should renew (half its certificate's life), and
	// NotAfter when its certificate expires; Overdue says the renewal is late.
	LastRenewal time.Time `json:"lastRenewal,omitzero"`
	NextRenewal time.Time `json:"nextRenewal,omitzero"`
	NotAfter    time.Time `json:"notAfter"`
	Overdue     bool      `json:"overdue,omitempty"`
	// Bundle is the version (meshca's number, in order of first use) of the trust bundle it last received.
	Bundle int `json:"bundle,omitempty"`
	// Replica is the replica whose records name it, when another replica's (peers.go); empty for this one's.
	Replica string `json:"replica,omitempty"`

	ref holderRef // its record, for the other replicas' answers
}

// Count is how many holders (or leaves) a namespace, node or CA has.
type Count struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

// ProgressPath is where a running meshca writes its Progress for the state file statePath.
func ProgressPath(statePath string) string { return statePath + ".progress" }

// Current checks that p is a report on s, no older than maxAge at now.
func (p *Progress) Current(s *State, now time.Time, maxAge time.Duration) error {
	switch {
	case p == nil:
		return fmt.Errorf("%w: no progress report; is meshca running with rotation.stateFile set to this file?",
			ErrStaleProgress)
	case p.Generation != s.Generation || p.Phase != s.Phase:
		return fmt.Errorf("%w: the report is for generation %d (%s), the state is at %d (%s); wait for meshca "+
			"to read the state", ErrStaleProgress, p.Generation, p.Phase, s.Generation, s.Phase)
	case now.Sub(p.At) > maxAge:
		return fmt.Errorf("%w: the report is from %s, older than %s; is meshca running?", ErrStaleProgress,
			p.At.UTC().Format(time.RFC3339), maxAge)
	}
	return nil
}

// Gate returns nil when the phase p reports on may advance, or an ErrGateClosed saying what holds it.
func (p *Progress) Gate() error {
	if !p.Complete {
		return fmt.Errorf("%w: meshca has not yet seen every unexpired certificate (since its start or since "+
			"identities were dropped); complete at %s", ErrGateClosed, p.CompleteAt.UTC().Format(time.RFC3339))
	}
	switch p.Phase {
	case PhasePrepared:
		if p.HoldingNext < p.Holders {
			return fmt.Errorf("%w: %d of %d workloads have not yet received the next root", ErrGateClosed,
				p.Holders-p.HoldingNext, p.Holders)
		}
	case PhaseActivated:
		if p.LeafNext < p.Holders {
			return fmt.Errorf("%w: %d of %d workloads hold a certificate that does not chain to the next root "+
				"(has cacerts been switched?)", ErrGateClosed, p.Holders-p.LeafNext, p.Holders)
		}
	default:
		return fmt.Errorf("%w: no gate in phase %s", ErrWrongPhase, p.Phase)
	}
	return nil
}

// ReadProgress reads a Progress file; a missing file is (nil, nil).
func ReadProgress(path string) (*Progress, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("rotation: read progress: %w", err)
	}
	p, err := ParseProgress(data)
	if err != nil {
		return nil, fmt.Errorf("rotation: progress file %s: %w", path, err)
	}
	return p, nil
}

// ParseProgress decodes a Progress file's contents, refusing unknown keys and a phase it does not know.
func ParseProgress(data []byte) (*Progress, error) {
	p := new(Progress)
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(p); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if !p.Phase.Known() {
		return nil, fmt.Errorf("unknown phase %.32q", p.Phase)
	}
	if p.Holders < 0 || p.HoldingNext < 0 || p.LeafNext < 0 || p.HoldingNext > p.Holders || p.LeafNext > p.Holders {
		return nil, errors.New("inconsistent counts")
	}
	return p, nil
}

// WriteProgress writes p to path atomically.
func WriteProgress(path string, p *Progress) error {
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(path, append(data, '\n'))
}
