package main

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshca/meshca/rotation"
)

// rotationRefused is a change the rotation refused (gate closed, wrong phase, not the leader, conflict): the
// command has printed why, and exits 3.
type rotationRefused struct{ err error }

func (g rotationRefused) Error() string { return g.err.Error() }
func (g rotationRefused) Unwrap() error { return g.err }
func (rotationRefused) ExitCode() int   { return 3 }

// refusedKinds are the errors a rotation command reports with exit 3.
var refusedKinds = []error{rotation.ErrGateClosed, rotation.ErrStaleProgress, rotation.ErrWrongPhase,
	rotation.ErrConflict, rotation.ErrNotLeader}

func rotationCommand() *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:   "rotation",
		Short: "Drive a root rotation through a running meshca: plan, start, status, pause, resume, rollback, force",
		Long: "A root rotation moves idle → staged (next root validated, leaf lifetime capped) → " +
			"publishing (both roots in every bundle; old CA signs) → activated (new CA signs) → " +
			"retiring (old root dropped from responses) → idle. meshca advances by itself as each gate " +
			"opens; these commands talk to its rotation admin API (docs/root-rotation.md).",
		Args: cobra.NoArgs,
	}
	cmd.PersistentFlags().StringVar(&addr, "admin-addr", rotation.DefaultAdminAddr,
		"the rotation admin API of the meshca that leads the rotation (rotation.adminAddr)")
	var tf adminTokenFlag
	var tok string
	tf.flags(cmd, true)
	// Every subcommand calls the admin API: read its token first.
	cmd.PersistentPreRunE = action(func(*cobra.Command, []string) (err error) {
		tok, err = tf.token()
		return err
	})
	client := func() *rotation.Client { return &rotation.Client{Addr: addr, Token: tok} }
	cmd.AddCommand(rotationStatus(client), rotationPlan(client), rotationStart(client),
		rotationSimple(client, rotation.ActionAdvance, "advance",
			"Move to the next phase now if its gate is open (exit 3 when not)"),
		rotationSimple(client, rotation.ActionPause, "pause", "Stop the automatic advance; the roots stay as they are"),
		rotationSimple(client, rotation.ActionResume, "resume", "Let a paused rotation advance again"),
		rotationSimple(client, rotation.ActionRollback, "rollback",
			"Go back one phase, to roots that still cover every leaf (alias: abort)", "abort"),
		rotationForce(client))
	return cmd
}

func rotationStatus(client func() *rotation.Client) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Print the rotation's phase, progress and gate as the meshca at --admin-addr sees it",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			st, err := client().Status(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			return printStatus(cmd.OutOrStdout(), st)
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the state, the progress and the gate as JSON")
	return cmd
}

func printStatus(w io.Writer, st *rotation.Status) error {
	s, p := st.State, st.Progress
	paused := ""
	if s.Paused {
		paused = ", paused"
	}
	fmt.Fprintf(w, "phase:      %s (generation %d%s", s.Phase, s.Generation, paused)
	if !s.Since.IsZero() {
		fmt.Fprintf(w, ", since %s", s.Since.Format(time.RFC3339))
	}
	fmt.Fprintln(w, ")")
	fmt.Fprintf(w, "replica:    %s (leading: %v)\n", st.Identity, st.Leading)
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
	if sr, err := s.SigningCA(); err == nil && sr != nil {
		fmt.Fprintf(w, "signing:    the CA that chains to %s (sha256 %x)\n", sr.Subject, sha256.Sum256(sr.Raw))
	}
	if s.Phase == rotation.PhaseIdle {
		return nil
	}
	if c := s.LifetimeCap(); c > 0 {
		fmt.Fprintf(w, "leaf cap:   %s\n", c)
	}
	if err := p.WriteText(w); err != nil {
		return err
	}
	if st.Gate != "" {
		fmt.Fprintf(w, "gate:       closed (to %s): %s\n", st.Next, st.Gate)
	} else {
		fmt.Fprintf(w, "gate:       open: %s may follow\n", st.Next)
	}
	for _, r := range st.Replicas {
		fmt.Fprintf(w, "  waiting for %s\n", r)
	}
	return nil
}

// change sends req and prints the transition, or why it was refused (exit 3).
func change(cmd *cobra.Command, client *rotation.Client, req rotation.ChangeRequest) error {
	st, err := client.Change(cmd.Context(), req)
	if err != nil {
		for _, k := range refusedKinds {
			if errors.Is(err, k) {
				fmt.Fprintf(cmd.ErrOrStderr(), "meshca rotation %s: refused: %v\n", req.Action, err)
				return rotationRefused{err}
			}
		}
		return err
	}
	t := st.Transition
	_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s: %s → %s (generation %d)%s\n", req.Action, t.From, t.To,
		t.Generation, map[bool]string{true: ", forced", false: ""}[t.Forced])
	return err
}

func rotationSimple(client func() *rotation.Client, a rotation.Action, use, short string,
	aliases ...string) *cobra.Command {
	var reason string
	var generation uint64
	cmd := &cobra.Command{
		Use: use, Short: short, Aliases: aliases, Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			return change(cmd, client(), rotation.ChangeRequest{Action: a, Reason: reason, Generation: generation})
		}),
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, kept in the state's history, the audit log and the Event")
	cmd.Flags().Uint64Var(&generation, "generation", 0, "refuse unless the state is at this generation "+
		"(as status showed it)")
	return cmd
}

func rotationStart(client func() *rotation.Client) *cobra.Command {
	var nextPath, oldPath, reason string
	var lifetime time.Duration
	cmd := &cobra.Command{
		Use:     "start",
		Aliases: []string{"prepare"},
		Short: "Stage a rotation to --next-root (default: the root of the file backend's nextDir CA): " +
			"validated, and leaf lifetimes capped (alias: prepare)",
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			next, err := readPEMFile(nextPath, "--next-root")
			if err != nil {
				return err
			}
			old, err := readPEMFile(oldPath, "--old-root")
			if err != nil {
				return err
			}
			return change(cmd, client(), rotation.ChangeRequest{Action: rotation.ActionStart, Reason: reason,
				NextRoot: next, OldRoot: old, MaxLeafLifetime: lifetime.String()})
		}),
	}
	cmd.Flags().StringVar(&nextPath, "next-root", "", "PEM file with the root to rotate to (default: the root "+
		"the CA in backends[].file.nextDir chains to; required without one)")
	cmd.Flags().StringVar(&oldPath, "old-root", "", "PEM file with the root in use (default with nextDir: the "+
		"root the cacerts CA chains to)")
	cmd.Flags().DurationVar(&lifetime, "max-leaf-lifetime", time.Hour,
		"the longest workload certificate issued until the rotation ends (0: issuance.maxTTL)")
	cmd.Flags().StringVar(&reason, "reason", "", "why, kept in the state's history, the audit log and the Event")
	return cmd
}

// readPEMFile reads one PEM root from path; "" for no path.
func readPEMFile(path, flag string) (string, error) {
	if path == "" {
		return "", nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flag, err)
	}
	if _, err := rotation.ParseRoot(data); err != nil {
		return "", fmt.Errorf("%s %s: %w", flag, path, err)
	}
	return string(data), nil
}

func rotationForce(client func() *rotation.Client) *cobra.Command {
	var reason string
	var dryRun, back bool
	cmd := &cobra.Command{
		Use:   "force",
		Short: "Advance (or with --rollback go back) past a closed gate; lists what it breaks first",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			if reason == "" {
				return usageError{errors.New("force needs --reason: it is kept in the audit log and the Event")}
			}
			c := client()
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			a := rotation.ActionAdvance
			if back {
				a = rotation.ActionRollback
			}
			w := cmd.OutOrStdout()
			if a == rotation.ActionAdvance && st.Gate == "" && st.Next != "" {
				fmt.Fprintf(w, "the gate to %s is open: nothing breaks\n", st.Next)
			} else if a == rotation.ActionAdvance {
				fmt.Fprintf(w, "forcing %s → %s would break:\n", st.State.Phase, st.Next)
				for _, b := range st.Breaks {
					fmt.Fprintf(w, "  %s\n", b)
				}
			}
			if dryRun {
				return nil
			}
			return change(cmd, c, rotation.ChangeRequest{Action: a, Force: true, Reason: reason,
				Generation: st.State.Generation})
		}),
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (required), kept in the audit log and the Event")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "only list what forcing would break")
	cmd.Flags().BoolVar(&back, "rollback", false, "force the rollback instead of the advance")
	return cmd
}

func rotationPlan(client func() *rotation.Client) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Print the steps from the current phase to idle, what each changes and what its gate waits for",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			st, err := client().Status(cmd.Context())
			if err != nil {
				return err
			}
			_, err = io.WriteString(cmd.OutOrStdout(), plan(st.State, st.SwitchesCA))
			return err
		}),
	}
	return cmd
}

// planSteps says, per phase, what entering it changes and what the gate out of it waits for.
var planSteps = map[rotation.Phase][2]string{
	rotation.PhaseStaged: {"next root validated; leaf lifetimes capped; nothing published",
		"nothing: publishing only adds a root"},
	rotation.PhasePublishing: {"old and next root in every response and published bundle; the old CA signs",
		"every holder's last bundle holds the next root"},
	rotation.PhaseActivated: {"", "every unexpired leaf chains to the next root"}, // activation(switches)
	rotation.PhaseRetiring: {"old root dropped from responses; published bundles keep it",
		"every unexpired leaf still chains to the next root"},
	rotation.PhaseIdle: {"old root dropped from the published bundles; leaf lifetime cap lifted", ""},
}

// activation says what entering activated changes: meshca switches the signing CA itself when a file
// backend holds the next CA (nextDir), else the operator must.
func activation(switches bool) string {
	if switches {
		return "meshca signs with the next CA (backends[].file.nextDir) by itself, on every replica; " +
			"both roots stay in every bundle"
	}
	return "the operator must switch the CA (cacerts) to the new one now: meshca has no nextDir to switch " +
		"to; both roots stay in every bundle"
}

func plan(s *rotation.State, switches bool) string {
	var b strings.Builder
	cur := *s
	if cur.Phase == rotation.PhaseIdle {
		start := "`meshca rotation start --next-root FILE --old-root FILE`"
		if switches {
			start = "`meshca rotation start` (the next root from nextDir)"
		}
		fmt.Fprintf(&b, "idle: %s stages a rotation; then\n", start)
		cur.Phase = rotation.PhaseStaged
		fmt.Fprintf(&b, "  → staged: %s\n", planSteps[rotation.PhaseStaged][0])
	} else {
		fmt.Fprintf(&b, "now %s (generation %d)\n", cur.Phase, cur.Generation)
	}
	for cur.Phase != rotation.PhaseIdle {
		next, err := cur.Next()
		if err != nil {
			break
		}
		what := planSteps[next][0]
		if next == rotation.PhaseActivated {
			what = activation(switches)
		}
		fmt.Fprintf(&b, "    gate: %s\n", planSteps[cur.Phase][1])
		fmt.Fprintf(&b, "  → %s: %s\n", next, what)
		cur.Phase = next
	}
	return b.String()
}
