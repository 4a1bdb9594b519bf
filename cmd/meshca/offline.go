package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/crl"
	"github.com/meshca/meshca/crl/admin"
)

// offlineOptions point meshca revoke and meshca crl at a stopped single instance's files instead of a running
// meshca: its revocation state file and its cacerts directory.
type offlineOptions struct {
	state, cacerts string
}

func (o *offlineOptions) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.state, "state", "", "offline: the revocation state file of a stopped meshca "+
		"(crl.stateFile); needs --cacerts")
	cmd.Flags().StringVar(&o.cacerts, "cacerts", "", "offline: the cacerts directory whose CA signs the CRLs")
	cmd.MarkFlagsRequiredTogether("state", "cacerts")
	cmd.MarkFlagsMutuallyExclusive("state", "admin-addr")
}

func (o *offlineOptions) set() bool { return o.state != "" }

// offlineService is the admin service over the files: the same code a running meshca uses, with its CA loaded
// from the cacerts directory and nothing served. It fails with crl.ErrLocked while a meshca runs on the state.
func (o *offlineOptions) service(ctx context.Context) (admin.Service, func(), error) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	fb, err := file.New(ctx, file.Config{Dir: o.cacerts, Logger: log})
	if err != nil {
		return nil, nil, fmt.Errorf("--cacerts: %w", err)
	}
	a := &app{closers: []func() error{fb.Close}}
	cfg := &Config{CRL: &CRLConfig{StateFile: o.state, Admin: AdminConfig{Disabled: true}}}
	rv, err := a.startRevocation(ctx, cfg, []ca.NamedBackend{{Name: "cacerts", Backend: fb}}, log,
		prometheus.NewRegistry(), nil, nil)
	if errors.Is(err, crl.ErrLocked) {
		err = fmt.Errorf("%w; meshca is running on it: use its admin API (--admin-addr) instead", err)
	}
	if err != nil {
		a.Close()
		return nil, nil, fmt.Errorf("--state: %w", err)
	}
	return rv, func() {
		_ = rv.reg.Flush(context.WithoutCancel(ctx))
		a.Close()
	}, nil
}

// adminService returns the running meshca's admin API at addr (over mTLS when tf is set), or the offline
// service when o is set.
func adminService(ctx context.Context, o *offlineOptions, addr string, tf *adminTLSFlags) (admin.Service, func(),
	error) {
	if o.set() {
		if tf.set() {
			return nil, nil, usageError{errors.New("--admin-cert/--admin-key/--admin-ca go with --admin-addr, " +
				"not with --state/--cacerts")}
		}
		return o.service(ctx)
	}
	c, err := tf.client(addr)
	if err != nil {
		return nil, nil, err
	}
	return c, func() {}, nil
}
