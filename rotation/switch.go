package rotation

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
)

// The CA switch lives in this file: with a backend that holds the next CA beside the one in use (the file
// backend's nextDir), meshca switches the signing CA itself. The state's SigningRoot says which CA signs; the
// controller takes the roots from the backend at start and checks, at start and again before activating, that
// the backend can sign under both.

// ErrNextCA: the backend that switches the signing CA has no usable next CA (missing, broken, its key not
// matching its certificate, or chaining to another root).
var ErrNextCA = errors.New("rotation: the next CA is not usable")

// CASwitch is a signing backend that holds the next CA beside the CA in use and signs with whichever chains to
// the state's SigningRoot (Controller.SigningRoot): the file backend with nextDir.
type CASwitch interface {
	// SwitchRoots reads the next CA afresh and returns the root the CA in use chains to and the root the next
	// CA chains to, or an error naming the configuration key that lacks a usable next CA.
	SwitchRoots(ctx context.Context) (inUse, next *x509.Certificate, err error)
	// CheckSwitch reads the next CA afresh and returns nil when the CA in use chains to old and the next CA,
	// its key matching its certificate, chains to next.
	CheckSwitch(ctx context.Context, old, next *x509.Certificate) error
}

// SigningRoot returns the root the signing CA must chain to (State.SigningRoot), or nil when no rotation has
// switched the CA: file.Config.SigningRoot.
func (c *Controller) SigningRoot() *x509.Certificate { return c.state.Load().signing }

// SwitchesCA reports whether meshca switches the signing CA itself (a CASwitch is configured) rather than the
// operator.
func (c *Controller) SwitchesCA() bool { return c.cfg.CASwitch != nil }

// checkSwitch completes and checks ch against the CA switch before it is applied to s: start takes the roots
// the caller left out from the backend and needs a next CA chaining to the next root; the advance to activated
// needs it still. A rotation that re-issues the root with the same key switches nothing.
func (c *Controller) checkSwitch(ctx context.Context, s *State, ch *Change) error {
	sw := c.cfg.CASwitch
	switch {
	case ch.Action == ActionStart && s.Phase == PhaseIdle:
		if sw == nil {
			return nil
		}
		if ch.Next == nil || ch.Old == nil {
			inUse, next, err := sw.SwitchRoots(ctx)
			if err != nil {
				return fmt.Errorf("%w: %w", ErrNextCA, err)
			}
			if ch.Next == nil {
				ch.Next = next
			}
			if ch.Old == nil {
				ch.Old = inUse
			}
		}
		if SameKey(ch.Next, ch.Old) {
			return nil
		}
		if err := sw.CheckSwitch(ctx, ch.Old, ch.Next); err != nil {
			return fmt.Errorf("%w: %w", ErrNextCA, err)
		}
	case ch.Action == ActionAdvance && s.Phase == PhasePublishing && !s.SameKey && sw != nil:
		next, old, err := s.Roots()
		if err != nil {
			return err
		}
		if err := sw.CheckSwitch(ctx, old, next); err != nil {
			return fmt.Errorf("%w: activating would leave meshca without a CA to sign with: %w", ErrNextCA, err)
		}
	}
	return nil
}
