package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// Build information, set with -ldflags "-X main.version=... -X main.commit=... -X main.date=..." (Makefile).
var (
	version = "dev"
	commit  = ""
	date    = ""
)

// buildInfo returns version, revision, Go version and build date; the revision falls back to the VCS stamp.
func buildInfo() (ver, rev, goVersion, built string) {
	rev, built = commit, date
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && rev == "":
				rev = s.Value
			case s.Key == "vcs.time" && built == "":
				built = s.Value
			}
		}
	}
	if rev == "" {
		rev = "unknown"
	}
	if built == "" {
		built = "unknown"
	}
	return version, rev, runtime.Version(), built
}

func versionString() string {
	v, rev, gov, built := buildInfo()
	return fmt.Sprintf("meshca %s\n  commit: %s\n  go:     %s\n  built:  %s\n", v, rev, gov, built)
}

// runError is a failure of a command that was given valid arguments: exit code 1.
type runError struct{ err error }

func (r runError) Error() string { return r.err.Error() }
func (r runError) Unwrap() error { return r.err }

// usageError is a mistake in the command line: meshca prints it and exits 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

// action wraps a command's work so that run can tell its failures (1) from usage mistakes (2).
func action(f func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := f(cmd, args)
		var u usageError
		if err == nil || errors.As(err, &u) {
			return err
		}
		return runError{err}
	}
}

// run is meshca's command line: it returns 0 on success, 1 when a command fails, 2 on a usage mistake.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	var r runError
	if st := (exitStatus{}); errors.As(err, &st) {
		return st.code // the command has reported its findings (meshca inspect)
	}
	if errors.As(err, &loggedError{}) {
		return 1 // serve has logged it in the configured format
	}
	var coded interface{ ExitCode() int }
	if errors.As(err, &coded) {
		return coded.ExitCode() // the command has printed its answer (policy explain: 3 = refused)
	}
	if errors.As(err, &r) {
		fmt.Fprintf(stderr, "%s: %v\n", cmd.CommandPath(), r.err)
		return 1
	}
	fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", cmd.CommandPath(), err, cmd.CommandPath())
	return 2
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "meshca",
		Short: "meshca: a certificate authority for Istio service meshes",
		Long: "meshca signs workload certificates for istio-agent and ztunnel (gRPC :15012) through a file, Vault or " +
			"step-ca backend, and serves health, metrics and the CRL over HTTP (:15014).",
		Version:       version,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				var names []string // from the tree, so that a new command is listed without an edit here
				for _, c := range cmd.Commands() {
					if c.IsAvailableCommand() {
						names = append(names, c.Name())
					}
				}
				return fmt.Errorf("unknown command %q; commands: %s", bounded(args[0]), strings.Join(names, ", "))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SetOut(stderr)
			_ = cmd.Usage()
			return errors.New("a command is required")
		},
	}
	root.SetVersionTemplate("{{with .Root}}" + "{{end}}" + versionString())
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(serveCommand(), initCommand(), tokenCommand(), inspectCommand(), configCommand(),
		policyCommand(), versionCommand())
	root.AddCommand(revokeCommand(), crlCommand(), rotationCommand())
	strictCompletion(root)
	return root
}

func versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print version, commit, Go version and build date",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprint(cmd.OutOrStdout(), versionString())
			return err
		}),
	}
}
