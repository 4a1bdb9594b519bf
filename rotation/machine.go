package rotation

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"time"

	"github.com/meshca/meshca/ca"
)

// The transitions of a rotation live in this file: what each action may do from each phase, the one gate
// each forward step needs, and the invariant every step keeps: every unexpired leaf chains to a root that
// every active holder of a trust bundle last received.

// Action is what an operator or the leader asks of a rotation.
type Action string

// The actions.
const (
	// ActionStart stages a rotation to Change.Next: idle → staged.
	ActionStart Action = "start"
	// ActionAdvance moves one phase forward once the gate is open (or with Force and a Reason).
	ActionAdvance Action = "advance"
	// ActionRollback moves one phase back, to the phase whose roots still cover every leaf.
	ActionRollback Action = "rollback"
	// ActionPause stops the automatic advance; ActionResume lets it go on.
	ActionPause  Action = "pause"
	ActionResume Action = "resume"
)

// maxReason bounds a transition's reason as kept in the state.
const maxReason = 256

// Change is one request to change the state.
type Change struct {
	Action Action
	// Force passes a closed gate; Reason is then required. Reason is recorded in every case.
	Force  bool
	Reason string
	// By names who asks (a Lease identity, "cli"); recorded.
	By string
	// Next and Old are the roots for ActionStart; MaxLeafLifetime the cap while the rotation runs (0: none).
	Next, Old       *x509.Certificate
	MaxLeafLifetime time.Duration
}

// Duration is a time.Duration written as a Go duration string ("1h0m0s") in the state.
type Duration time.Duration

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Next returns the phase an advance leads to from s.
func (s *State) Next() (Phase, error) {
	switch s.Phase {
	case PhaseStaged:
		return PhasePublishing, nil
	case PhasePublishing:
		if s.SameKey {
			return PhaseRetiring, nil // every leaf chains to both roots: nothing to activate
		}
		return PhaseActivated, nil
	case PhaseActivated:
		return PhaseRetiring, nil
	case PhaseRetiring:
		return PhaseIdle, nil
	}
	return "", fmt.Errorf("%w: there is no rotation to advance (start one first)", ErrWrongPhase)
}

// Previous returns the phase a rollback leads to from s.
func (s *State) Previous() (Phase, error) {
	switch s.Phase {
	case PhaseStaged:
		return PhaseIdle, nil
	case PhasePublishing:
		return PhaseStaged, nil
	case PhaseActivated:
		return PhasePublishing, nil
	case PhaseRetiring:
		if s.SameKey {
			return PhasePublishing, nil
		}
		return PhaseActivated, nil
	}
	return "", fmt.Errorf("%w: there is no rotation to roll back", ErrWrongPhase)
}

// Gate returns nil when p, a report on s, shows that the move to the next phase keeps the invariant, or an
// ErrGateClosed saying what holds it. A nil p is a closed gate, except where the move needs no report.
//   - staged → publishing adds a root: always safe.
//   - publishing → activated (or → retiring with the same key): every holder has the next root in its bundle.
//   - activated → retiring and retiring → idle drop the old root: every unexpired leaf chains to the next root.
func (s *State) Gate(p *Progress) error {
	to, err := s.Next()
	if err != nil {
		return err
	}
	return s.gateTo(to, p)
}

// RollbackGate returns nil when the rollback from s keeps the invariant: going back from publishing removes
// the next root from the bundles, so no leaf may chain to it yet. The other rollbacks add roots back.
func (s *State) RollbackGate(p *Progress) error {
	if s.Phase != PhasePublishing || s.SameKey {
		return nil
	}
	if err := complete(p); err != nil {
		return err
	}
	if p.LeafNext > 0 {
		return fmt.Errorf("%w: %d workloads hold a leaf from the next CA, which the staged bundles lack "+
			"(switch cacerts back and wait for them to renew)", ErrGateClosed, p.LeafNext)
	}
	return nil
}

func (s *State) gateTo(to Phase, p *Progress) error {
	if s.Phase == PhaseStaged {
		return nil
	}
	if err := complete(p); err != nil {
		return err
	}
	if s.Phase == PhasePublishing {
		if p.HoldingNext < p.Holders {
			return fmt.Errorf("%w: %d of %d holders have not yet received the next root", ErrGateClosed,
				p.Holders-p.HoldingNext, p.Holders)
		}
		return nil
	}
	if !s.SameKey && p.LeafNext < p.Holders {
		return fmt.Errorf("%w: %d of %d holders have a leaf that does not chain to the next root (has cacerts "+
			"been switched?); %s would leave them untrusted", ErrGateClosed, p.Holders-p.LeafNext, p.Holders, to)
	}
	return nil
}

func complete(p *Progress) error {
	switch {
	case p == nil:
		return fmt.Errorf("%w: no progress report", ErrStaleProgress)
	case !p.Complete:
		return fmt.Errorf("%w: meshca has not yet seen every unexpired certificate (since its start or since "+
			"identities were dropped); complete at %s", ErrGateClosed, p.CompleteAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// Apply carries out ch on s at now, with p the current progress report on s (nil when none is known; the
// caller checks that it is current). It returns the transition made; s is unchanged on error.
func (s *State) Apply(ch Change, p *Progress, now time.Time) (Transition, error) {
	if len(ch.Reason) > maxReason {
		ch.Reason = ch.Reason[:maxReason]
	}
	if ch.Force && ch.Reason == "" {
		return Transition{}, fmt.Errorf("%w: a forced transition needs a reason", ErrInvalidChange)
	}
	switch ch.Action {
	case ActionStart:
		return s.start(ch, now)
	case ActionAdvance:
		to, err := s.Next()
		if err != nil {
			return Transition{}, err
		}
		if err := s.gateTo(to, p); err != nil && !ch.Force {
			return Transition{}, err
		} else if err == nil {
			ch.Force = false // an open gate needs no force: record the transition as an ordinary one
		}
		return s.move(to, ch, now), nil
	case ActionRollback:
		to, err := s.Previous()
		if err != nil {
			return Transition{}, err
		}
		if err := s.RollbackGate(p); err != nil && !ch.Force {
			return Transition{}, err
		} else if err == nil {
			ch.Force = false
		}
		return s.move(to, ch, now), nil
	case ActionPause, ActionResume:
		if s.Phase == PhaseIdle {
			return Transition{}, fmt.Errorf("%w: there is no rotation to %s", ErrWrongPhase, ch.Action)
		}
		if s.Paused == (ch.Action == ActionPause) {
			return Transition{}, fmt.Errorf("%w: the rotation is already %sd", ErrWrongPhase, ch.Action)
		}
		t := s.move(s.Phase, ch, now)
		s.Paused = ch.Action == ActionPause
		return t, nil
	}
	return Transition{}, fmt.Errorf("%w: unknown action %.32q", ErrInvalidChange, ch.Action)
}

// start stages a rotation: the next root must be a valid self-signed CA certificate other than the old one.
func (s *State) start(ch Change, now time.Time) (Transition, error) {
	if s.Phase != PhaseIdle {
		return Transition{}, fmt.Errorf("%w: start needs an idle rotation; this one is %s (roll it back first)",
			ErrWrongPhase, s.Phase)
	}
	if ch.Next == nil || ch.Old == nil {
		return Transition{}, fmt.Errorf("%w: start needs the next and the old root (--next-root and --old-root, "+
			"or backends[].file.nextDir holding the next CA)", ErrInvalidRoot)
	}
	if err := checkRoot(ch.Next, now); err != nil {
		return Transition{}, err
	}
	if ch.Next.Equal(ch.Old) {
		return Transition{}, fmt.Errorf("%w: the next root is the root in use", ErrInvalidRoot)
	}
	if ch.MaxLeafLifetime < 0 || (ch.MaxLeafLifetime > 0 && ch.MaxLeafLifetime < ca.MinLifetime) {
		return Transition{}, fmt.Errorf("%w: the maximum leaf lifetime must be 0 (no cap) or at least %s, not %s",
			ErrInvalidChange, ca.MinLifetime, ch.MaxLeafLifetime)
	}
	s.NextRoot, s.OldRoot = encode(ch.Next), encode(ch.Old)
	s.SameKey = SameKey(ch.Next, ch.Old)
	s.MaxLeafLifetime = Duration(ch.MaxLeafLifetime)
	return s.move(PhaseStaged, ch, now), nil
}

// SameKey reports whether next re-issues old: the same subject and public key, so that every certificate
// old signed verifies under next too.
func SameKey(next, old *x509.Certificate) bool {
	return string(next.RawSubject) == string(old.RawSubject) &&
		string(next.RawSubjectPublicKeyInfo) == string(old.RawSubjectPublicKeyInfo)
}

func (s *State) move(to Phase, ch Change, now time.Time) Transition {
	s.Generation++
	t := Transition{At: now.UTC(), From: s.Phase, To: to, Generation: s.Generation, Forced: ch.Force,
		Reason: ch.Reason, Action: ch.Action, By: ch.By}
	s.History = append(s.History, t)
	if len(s.History) > maxHistory {
		s.History = s.History[len(s.History)-maxHistory:]
	}
	if to != s.Phase {
		s.Since = now.UTC()
	}
	switch {
	case s.Phase == PhasePublishing && to == PhaseActivated:
		s.SigningRoot = s.NextRoot // the new CA signs
	case s.Phase == PhaseActivated && to == PhasePublishing:
		s.SigningRoot = s.OldRoot // rolled back: the old CA signs again
	}
	s.Phase = to
	if to == PhaseIdle {
		s.NextRoot, s.OldRoot, s.SameKey, s.MaxLeafLifetime, s.Paused = "", "", false, 0, false
	}
	return t
}

// LifetimeCap returns the cap on leaf lifetimes the state puts in force; 0 for none.
func (s *State) LifetimeCap() time.Duration {
	if s.Phase == PhaseIdle {
		return 0
	}
	return time.Duration(s.MaxLeafLifetime)
}
