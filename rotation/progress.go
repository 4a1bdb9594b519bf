package rotation

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"
)

// maxLaggards bounds the laggards a Progress names.
const maxLaggards = 20

// Progress is a running meshca's report on a rotation, written next to the state file (ProgressPath) and read
// by `meshca rotation status|advance`.
type Progress struct {
	// Generation and Phase are those of the state the report was computed for; At is when.
	Generation uint64    `json:"generation"`
	Phase      Phase     `json:"phase"`
	At         time.Time `json:"at"`
	// Holders counts identities with an unexpired certificate; HoldingNext of them last received a bundle with
	// the next root, and LeafNext hold a leaf that chains to it.
	Holders     int `json:"holders"`
	HoldingNext int `json:"holdingNext"`
	LeafNext    int `json:"leafNext"`
	// Complete is whether the tracker has seen every unexpired certificate: it has run for a full maximum
	// lifetime and dropped none. CompleteAt is when it will be.
	Complete   bool      `json:"complete"`
	CompleteAt time.Time `json:"completeAt"`
	// Laggards names some of the identities that hold up the gate.
	Laggards []Laggard `json:"laggards,omitempty"`
}

// Laggard is an identity that holds up the gate, with when its certificate expires.
type Laggard struct {
	Identity string    `json:"identity"`
	NotAfter time.Time `json:"notAfter"`
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
