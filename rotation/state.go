package rotation

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Phase is the step a rotation is at.
type Phase string

// The phases of a rotation, in order.
const (
	// PhaseIdle: no rotation; the trust bundle is the backends' roots.
	PhaseIdle Phase = "idle"
	// PhasePrepared: the next root is in every response's trust bundle; the old CA still signs.
	PhasePrepared Phase = "prepared"
	// PhaseActivated: cacerts has been switched to the new CA; the old root stays in every trust bundle.
	PhaseActivated Phase = "activated"
)

// stateVersion is the version of the state file's format.
const stateVersion = 1

// maxHistory bounds the transitions kept in the state file.
const maxHistory = 20

// Errors of the state machine; match them with errors.Is.
var (
	// ErrGateClosed: the next phase would break workloads that have not yet received what it needs.
	ErrGateClosed = errors.New("rotation: gate closed")
	// ErrWrongPhase: the transition does not start from the current phase.
	ErrWrongPhase = errors.New("rotation: not possible in the current phase")
	// ErrStaleProgress: the progress a running meshca reported is missing, old, or for another generation.
	ErrStaleProgress = errors.New("rotation: no current progress from meshca")
	// ErrInvalidRoot: a root given to prepare is not a usable CA certificate.
	ErrInvalidRoot = errors.New("rotation: invalid root")
)

// State is a rotation's persisted state.
type State struct {
	Version int   `json:"version"`
	Phase   Phase `json:"phase"`
	// Generation counts transitions; Progress reports are matched to it.
	Generation uint64 `json:"generation"`
	// NextRoot is the root being rotated to and OldRoot the root being retired, PEM.
	NextRoot string `json:"nextRoot,omitempty"`
	OldRoot  string `json:"oldRoot,omitempty"`
	// Since is when the current phase began.
	Since time.Time `json:"since"`
	// History holds the latest transitions, oldest first.
	History []Transition `json:"history,omitempty"`
}

// Transition is one change of phase, kept for the audit trail.
type Transition struct {
	At         time.Time `json:"at"`
	From       Phase     `json:"from"`
	To         Phase     `json:"to"`
	Generation uint64    `json:"generation"`
	Forced     bool      `json:"forced,omitempty"`
	Reason     string    `json:"reason,omitempty"`
}

// Idle is the state of a mesh with no rotation.
func Idle() *State { return &State{Version: stateVersion, Phase: PhaseIdle} }

// Roots returns the next and old roots parsed; nil when absent.
func (s *State) Roots() (next, old *x509.Certificate, err error) {
	if next, err = parseRoot(s.NextRoot); err != nil {
		return nil, nil, fmt.Errorf("nextRoot: %w", err)
	}
	if old, err = parseRoot(s.OldRoot); err != nil {
		return nil, nil, fmt.Errorf("oldRoot: %w", err)
	}
	return next, old, nil
}

// ExtraRoots returns the roots the phase adds to every trust bundle: the next root while prepared, the next
// and the old root while activated (so the bundle holds both whenever cacerts is switched), none when idle.
func (s *State) ExtraRoots() ([]*x509.Certificate, error) {
	next, old, err := s.Roots()
	if err != nil {
		return nil, err
	}
	switch s.Phase {
	case PhasePrepared:
		return []*x509.Certificate{next}, nil
	case PhaseActivated:
		return []*x509.Certificate{next, old}, nil
	}
	return nil, nil
}

func parseRoot(p string) (*x509.Certificate, error) {
	if p == "" {
		return nil, nil
	}
	b, rest := pem.Decode([]byte(p))
	if b == nil || b.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: want exactly one PEM CERTIFICATE block", ErrInvalidRoot)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRoot, err)
	}
	return c, nil
}

// checkRoot refuses what cannot serve as a mesh root at now.
func checkRoot(c *x509.Certificate, now time.Time) error {
	switch {
	case !c.IsCA || !c.BasicConstraintsValid:
		return fmt.Errorf("%w: %q is not a CA certificate", ErrInvalidRoot, c.Subject.String())
	case c.CheckSignatureFrom(c) != nil:
		return fmt.Errorf("%w: %q is not self-signed", ErrInvalidRoot, c.Subject.String())
	case now.After(c.NotAfter):
		return fmt.Errorf("%w: %q expired at %s", ErrInvalidRoot, c.Subject.String(), c.NotAfter.UTC())
	}
	return nil
}

// Prepare moves an idle rotation to prepared with next and old (the root in use). The next root must be a
// valid self-signed CA certificate other than old.
func (s *State) Prepare(next, old *x509.Certificate, now time.Time) error {
	if s.Phase != PhaseIdle {
		return fmt.Errorf("%w: prepare needs an idle rotation; this one is %s (abort it first)", ErrWrongPhase,
			s.Phase)
	}
	if next == nil || old == nil {
		return fmt.Errorf("%w: prepare needs the next and the old root", ErrInvalidRoot)
	}
	if err := checkRoot(next, now); err != nil {
		return err
	}
	if next.Equal(old) {
		return fmt.Errorf("%w: the next root is the root in use", ErrInvalidRoot)
	}
	s.NextRoot, s.OldRoot = encode(next), encode(old)
	s.transition(PhasePrepared, now, false, "")
	return nil
}

// Advance moves to the next phase when p, a current report from meshca, shows its gate open, or when force
// is set (reason is then required and recorded). prepared → activated needs every tracked workload to hold
// the next root in its bundle; activated → idle needs every unexpired leaf to chain to the next root.
func (s *State) Advance(p *Progress, now time.Time, maxAge time.Duration, force bool, reason string) error {
	var to Phase
	switch s.Phase {
	case PhasePrepared:
		to = PhaseActivated
	case PhaseActivated:
		to = PhaseIdle
	default:
		return fmt.Errorf("%w: there is no rotation to advance (prepare one first)", ErrWrongPhase)
	}
	if force {
		if reason == "" {
			return fmt.Errorf("%w: a forced advance needs a reason", ErrGateClosed)
		}
	} else {
		if err := p.Current(s, now, maxAge); err != nil {
			return err
		}
		if err := p.Gate(); err != nil {
			return err
		}
	}
	if to == PhaseIdle {
		s.NextRoot, s.OldRoot = "", ""
	}
	s.transition(to, now, force, reason)
	return nil
}

// Abort returns a prepared rotation to idle: the next root leaves the bundles. An activated rotation cannot
// be aborted (leaves chain to the next root already): switch cacerts back and advance, or finish it.
func (s *State) Abort(now time.Time, reason string) error {
	if s.Phase != PhasePrepared {
		return fmt.Errorf("%w: only a prepared rotation can be aborted; this one is %s", ErrWrongPhase, s.Phase)
	}
	s.NextRoot, s.OldRoot = "", ""
	s.transition(PhaseIdle, now, false, reason)
	return nil
}

func (s *State) transition(to Phase, now time.Time, forced bool, reason string) {
	s.Generation++
	s.History = append(s.History, Transition{At: now.UTC(), From: s.Phase, To: to, Generation: s.Generation,
		Forced: forced, Reason: reason})
	if len(s.History) > maxHistory {
		s.History = s.History[len(s.History)-maxHistory:]
	}
	s.Phase, s.Since = to, now.UTC()
}

func encode(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

// Load reads the state file; a missing file is an idle rotation.
func Load(path string) (*State, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Idle(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("rotation: read state (rotation.stateFile): %w", err)
	}
	s, err := ParseState(data)
	if err != nil {
		return nil, fmt.Errorf("rotation: state file %s: %w", path, err)
	}
	return s, nil
}

// ParseState decodes and checks a state file's contents.
func ParseState(data []byte) (*State, error) {
	s := new(State)
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(s); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if s.Version != stateVersion {
		return nil, fmt.Errorf("version %d is not supported (want %d)", s.Version, stateVersion)
	}
	next, old, err := s.Roots()
	if err != nil {
		return nil, err
	}
	switch s.Phase {
	case PhaseIdle:
	case PhasePrepared, PhaseActivated:
		if next == nil || old == nil {
			return nil, fmt.Errorf("phase %s needs nextRoot and oldRoot", s.Phase)
		}
	default:
		return nil, fmt.Errorf("unknown phase %.32q", s.Phase)
	}
	return s, nil
}

// Save writes s to path atomically: a temporary file in the same directory, fsynced, renamed over path, and
// the directory fsynced, so that a crash leaves either the old or the new state.
func Save(path string, s *State) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(path, append(data, '\n'))
}

func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("rotation: write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after the rename
	if _, err = f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("rotation: write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// ParseRoot parses one PEM certificate, the form of the roots in a state file and of `meshca rotation
// prepare --next-root`.
func ParseRoot(data []byte) (*x509.Certificate, error) {
	c, err := parseRoot(string(data))
	if err == nil && c == nil {
		err = fmt.Errorf("%w: empty", ErrInvalidRoot)
	}
	return c, err
}
