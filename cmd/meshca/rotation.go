package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/rotation"
	"github.com/meshca/meshca/trustbundle"
)

// gateClosed is a refused advance: the command has printed why, and exits 3.
type gateClosed struct{ err error }

func (g gateClosed) Error() string { return g.err.Error() }
func (g gateClosed) Unwrap() error { return g.err }
func (gateClosed) ExitCode() int   { return 3 }

func rotationCommand() *cobra.Command {
	var statePath string
	cmd := &cobra.Command{
		Use:   "rotation",
		Short: "Rotate the mesh root: status, prepare, advance, abort (docs/root-rotation.md)",
		Long: "A root rotation moves idle → prepared (the next root is in every response's trust bundle) → " +
			"activated (cacerts switched to the new CA; the old root stays in every bundle) → idle (old root " +
			"withdrawn). The commands change the state file that a running meshca follows (rotation.stateFile); " +
			"advance refuses (exit 3) until meshca reports that every workload has what the next phase needs.",
		Args: cobra.NoArgs,
	}
	cmd.PersistentFlags().StringVar(&statePath, "state", "", "the rotation state file (rotation.stateFile)")
	need := func() error {
		if statePath == "" {
			return usageError{errors.New("--state is required: the rotation.stateFile of the running meshca")}
		}
		return nil
	}
	cmd.AddCommand(rotationStatus(&statePath, need), rotationPrepare(&statePath, need),
		rotationAdvance(&statePath, need), rotationAbort(&statePath, need))
	return cmd
}

func rotationStatus(statePath *string, need func() error) *cobra.Command {
	var asJSON bool
	var maxAge time.Duration
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Print the rotation's phase, its progress as meshca reports it, and what holds the gate",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			if err := need(); err != nil {
				return err
			}
			s, p, err := readRotation(*statePath)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(struct {
					State    *rotation.State    `json:"state"`
					Progress *rotation.Progress `json:"progress,omitempty"`
				}{s, p})
			}
			return printStatus(cmd.OutOrStdout(), s, p, time.Now(), maxAge)
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the state and the progress report as JSON")
	cmd.Flags().DurationVar(&maxAge, "max-progress-age", time.Minute, "older progress reports are stale")
	return cmd
}

func readRotation(path string) (*rotation.State, *rotation.Progress, error) {
	s, err := rotation.Load(path)
	if err != nil {
		return nil, nil, err
	}
	p, err := rotation.ReadProgress(rotation.ProgressPath(path))
	return s, p, err
}

func printStatus(w io.Writer, s *rotation.State, p *rotation.Progress, now time.Time, maxAge time.Duration) error {
	fmt.Fprintf(w, "phase:      %s (generation %d", s.Phase, s.Generation)
	if !s.Since.IsZero() {
		fmt.Fprintf(w, ", since %s", s.Since.Format(time.RFC3339))
	}
	fmt.Fprintln(w, ")")
	next, old, err := s.Roots()
	if err != nil {
		return err
	}
	for _, r := range []struct {
		name string
		c    *x509.Certificate
	}{{"next root", next}, {"old root", old}} {
		if r.c != nil {
			fmt.Fprintf(w, "%-11s %s (sha256 %x)\n", r.name+":", r.c.Subject, sha256.Sum256(r.c.Raw))
		}
	}
	if s.Phase == rotation.PhaseIdle {
		return nil
	}
	if err := p.Current(s, now, maxAge); err != nil {
		fmt.Fprintf(w, "progress:   unknown: %v\n", err)
		return nil
	}
	if err := p.WriteText(w); err != nil {
		return err
	}
	if gerr := p.Gate(); gerr != nil {
		fmt.Fprintf(w, "gate:       closed: %v\n", gerr)
	} else {
		fmt.Fprintln(w, "gate:       open: `meshca rotation advance` may proceed")
	}
	return nil
}

// changeRotation applies change to the state file under its lock and saves it.
func changeRotation(path string, change func(*rotation.State) error) (*rotation.State, error) {
	unlock, err := rotation.Lock(path)
	if err != nil {
		return nil, err
	}
	defer unlock()
	s, err := rotation.Load(path)
	if err != nil {
		return nil, err
	}
	if err := change(s); err != nil {
		return nil, err
	}
	return s, rotation.Save(path, s)
}

func rotationPrepare(statePath *string, need func() error) *cobra.Command {
	var nextPath, oldPath string
	cmd := &cobra.Command{
		Use:   "prepare",
		Short: "Start a rotation: publish the next root in every response's trust bundle",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			if err := need(); err != nil {
				return err
			}
			if nextPath == "" || oldPath == "" {
				return usageError{errors.New("--next-root and --old-root are required (PEM files)")}
			}
			next, err := readRoot(nextPath, "--next-root")
			if err != nil {
				return err
			}
			old, err := readRoot(oldPath, "--old-root")
			if err != nil {
				return err
			}
			s, err := changeRotation(*statePath, func(s *rotation.State) error {
				return s.Prepare(next, old, time.Now())
			})
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "prepared (generation %d): meshca adds the next root to every "+
				"trust bundle within rotation.pollInterval; follow `meshca rotation status`\n", s.Generation)
			return err
		}),
	}
	cmd.Flags().StringVar(&nextPath, "next-root", "", "PEM file with the root to rotate to")
	cmd.Flags().StringVar(&oldPath, "old-root", "", "PEM file with the root in use (cacerts root-cert.pem)")
	return cmd
}

func readRoot(path, flag string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	c, err := rotation.ParseRoot(data)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", flag, path, err)
	}
	return c, nil
}

func rotationAdvance(statePath *string, need func() error) *cobra.Command {
	var force bool
	var reason string
	var maxAge time.Duration
	cmd := &cobra.Command{
		Use:   "advance",
		Short: "Move to the next phase once meshca reports it safe (exit 3 when not)",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			if err := need(); err != nil {
				return err
			}
			if force && reason == "" {
				return usageError{errors.New("--force needs --reason")}
			}
			s, err := changeRotation(*statePath, func(s *rotation.State) error {
				p, err := rotation.ReadProgress(rotation.ProgressPath(*statePath))
				if err != nil {
					return err
				}
				if err := s.Advance(p, time.Now(), maxAge, force, reason); err != nil {
					if errors.Is(err, rotation.ErrGateClosed) || errors.Is(err, rotation.ErrStaleProgress) {
						fmt.Fprintf(cmd.ErrOrStderr(), "meshca rotation advance: refused: %v\n", err)
						if p != nil {
							for _, l := range p.Laggards {
								fmt.Fprintf(cmd.ErrOrStderr(), "  waiting for %s (certificate expires %s)\n",
									l.Identity, l.NotAfter.Format(time.RFC3339))
							}
						}
						return gateClosed{err}
					}
					return err
				}
				return nil
			})
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "advanced to %s (generation %d)\n", s.Phase, s.Generation)
			return err
		}),
	}
	cmd.Flags().BoolVar(&force, "force", false, "advance although the gate is closed (breaks the laggards' mTLS)")
	cmd.Flags().StringVar(&reason, "reason", "", "why, recorded in the state's history (required with --force)")
	cmd.Flags().DurationVar(&maxAge, "max-progress-age", time.Minute, "older progress reports are stale")
	return cmd
}

func rotationAbort(statePath *string, need func() error) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "abort",
		Short: "Abandon a prepared rotation: the next root leaves the trust bundles",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			if err := need(); err != nil {
				return err
			}
			s, err := changeRotation(*statePath, func(s *rotation.State) error { return s.Abort(time.Now(), reason) })
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "aborted (generation %d)\n", s.Generation)
			return err
		}),
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, recorded in the state's history")
	return cmd
}

// rotation starts the rotation controller when the configuration has a rotation section: it returns the
// issuer's observer (the expiry tracker, and the rotation tracker beside it) and its extra trust roots.
func (a *app) rotation(cfg *Config, tracker ca.IssuanceObserver, log *slog.Logger,
	reg prometheus.Registerer) (ca.IssuanceObserver, func(context.Context) ([]*x509.Certificate, error), error) {
	if cfg.Rotation == nil {
		return tracker, nil, nil
	}
	rc := *cfg.Rotation
	rc.MaxLifetime, rc.Logger, rc.Registerer = cfg.Issuance.EffectiveMaxTTL(), log.With("component", "rotation"), reg
	c, err := rotation.New(rc)
	if err != nil {
		return nil, nil, err
	}
	a.run = append(a.run, c.Run)
	a.pages = map[string]http.Handler{rotation.PagePath: rotation.StatusPage(c.Progress)}
	return c.Observer(tracker), c.ExtraRoots, nil
}

// withExtraRoots publishes the rotation's extra roots (the next root, then the old one) beside src's roots,
// so that the ClusterTrustBundle and istio-ca-root-cert ConfigMaps carry what the responses carry.
func withExtraRoots(src trustbundle.Source,
	extra func(context.Context) ([]*x509.Certificate, error)) trustbundle.Source {
	if extra == nil {
		return src
	}
	return trustbundle.SourceFunc(func(ctx context.Context) ([]*x509.Certificate, error) {
		roots, err := src.Roots(ctx)
		if err != nil {
			return nil, err
		}
		more, err := extra(ctx)
		if err != nil {
			return nil, err
		}
		for _, m := range more {
			if !slices.ContainsFunc(roots, m.Equal) {
				roots = append(roots, m)
			}
		}
		return roots, nil
	})
}
