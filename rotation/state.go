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
	// PhaseStaged: the next root is validated and recorded, and the maximum leaf lifetime is lowered
	// (State.MaxLeafLifetime) so that the later phases wait for short-lived leaves only. Nothing is published.
	PhaseStaged Phase = "staged"
	// PhasePublishing: the old and the next root are in every response and every published bundle; the old
	// CA still signs.
	PhasePublishing Phase = "publishing"
	// PhaseActivated: every holder has the next root; the new CA signs (State.SigningRoot: a CASwitch backend
	// switches by itself, otherwise the operator switches cacerts); both roots stay in every bundle.
	PhaseActivated Phase = "activated"
	// PhaseRetiring: every leaf chains to the next root; the old root is dropped from responses, and stays in
	// the published bundles until the rotation returns to idle.
	PhaseRetiring Phase = "retiring"
	// PhasePrepared is the first part's name for PhasePublishing; state files that say "prepared" load as
	// publishing.
	PhasePrepared = PhasePublishing
)

// Known reports whether p is a phase of this package.
func (p Phase) Known() bool {
	switch p {
	case PhaseIdle, PhaseStaged, PhasePublishing, PhaseActivated, PhaseRetiring:
		return true
	}
	return false
}

// stateVersion is the version of the state file's format; version 1 files (the first part's) load too.
const stateVersion = 2

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
	// ErrConflict: the state changed since it was read (another writer); read it again and retry.
	ErrConflict = errors.New("rotation: the state changed meanwhile")
	// ErrNotLeader: this replica does not hold the rotation Lease and may not change the state.
	ErrNotLeader = errors.New("rotation: this replica does not lead the rotation")
	// ErrInvalidChange: the change asked for is malformed (a missing reason, a bad lifetime).
	ErrInvalidChange = errors.New("rotation: invalid change")
	// ErrUnauthorized: the admin API refused the call for a missing or wrong admin token.
	ErrUnauthorized = errors.New("rotation: the admin token is missing or wrong")
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
	// Paused stops the automatic advance; the phase's roots stay as they are.
	Paused bool `json:"paused,omitempty"`
	// SameKey marks the cheap case: the next root re-issues the old one with the same subject and key, so
	// every leaf chains to both and no activated phase is needed.
	SameKey bool `json:"sameKey,omitempty"`
	// SigningRoot (PEM) is the root the signing CA must chain to, for a backend that holds two CAs and switches
	// between them (the file backend's nextDir): the next root from activated on, kept when the rotation
	// returns to idle, the old root again after a rollback from activated. Empty: no rotation has switched.
	SigningRoot string `json:"signingRoot,omitempty"`
	// MaxLeafLifetime caps workload certificates from staged until the rotation returns to idle; 0: no cap.
	MaxLeafLifetime Duration `json:"maxLeafLifetime,omitempty"`
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
	// Action is what caused it (start, advance, rollback, pause, resume) and By who (a Lease identity).
	Action Action `json:"action,omitempty"`
	By     string `json:"by,omitempty"`
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

// ExtraRoots returns the roots the phase adds to every response's trust bundle: the next root while
// publishing, the next and the old root while activated (so the bundle holds both whenever cacerts is
// switched), the next root while retiring, none when idle or staged.
func (s *State) ExtraRoots() ([]*x509.Certificate, error) {
	next, old, err := s.Roots()
	if err != nil {
		return nil, err
	}
	switch s.Phase {
	case PhasePublishing, PhaseRetiring:
		return []*x509.Certificate{next}, nil
	case PhaseActivated:
		return []*x509.Certificate{next, old}, nil
	}
	return nil, nil
}

// PublishedRoots returns the roots the phase adds to the published bundles (ClusterTrustBundle,
// istio-ca-root-cert): as ExtraRoots, except that retiring keeps the old root there until idle.
func (s *State) PublishedRoots() ([]*x509.Certificate, error) {
	if s.Phase != PhaseRetiring {
		return s.ExtraRoots()
	}
	next, old, err := s.Roots()
	if err != nil {
		return nil, err
	}
	return []*x509.Certificate{next, old}, nil
}

// WithdrawnRoots returns the roots left out of every response although a backend may still list them: the
// old root while retiring (unless it shares the next root's key, which is then the same trust anchor).
func (s *State) WithdrawnRoots() ([]*x509.Certificate, error) {
	if s.Phase != PhaseRetiring {
		return nil, nil
	}
	_, old, err := s.Roots()
	if err != nil {
		return nil, err
	}
	return []*x509.Certificate{old}, nil
}

// SigningCA returns the parsed SigningRoot: the root the signing CA must chain to, nil when none is set.
func (s *State) SigningCA() (*x509.Certificate, error) {
	c, err := parseRoot(s.SigningRoot)
	if err != nil {
		return nil, fmt.Errorf("signingRoot: %w", err)
	}
	return c, nil
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
	if s.Version != 1 && s.Version != stateVersion {
		return nil, fmt.Errorf("version %d is not supported (want %d)", s.Version, stateVersion)
	}
	if s.Version == 1 && s.Phase == "prepared" {
		s.Phase = PhasePublishing
	}
	s.Version = stateVersion
	next, old, err := s.Roots()
	if err != nil {
		return nil, err
	}
	if _, err := s.SigningCA(); err != nil {
		return nil, err
	}
	switch {
	case !s.Phase.Known():
		return nil, fmt.Errorf("unknown phase %.32q", s.Phase)
	case s.Phase != PhaseIdle && (next == nil || old == nil):
		return nil, fmt.Errorf("phase %s needs nextRoot and oldRoot", s.Phase)
	case s.MaxLeafLifetime < 0:
		return nil, errors.New("maxLeafLifetime must not be negative")
	case s.Phase == PhaseIdle && s.Paused:
		return nil, errors.New("an idle rotation cannot be paused")
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
