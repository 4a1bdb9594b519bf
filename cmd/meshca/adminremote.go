package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/meshca/meshca/crl/admin"
)

// adminTLSFlags are the client credentials for a remote admin listener (crl.admin.remote), and the admin token
// for the loopback one.
type adminTLSFlags struct {
	cert, key, ca string
	tok           adminTokenFlag
}

func (f *adminTLSFlags) flags(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.cert, "admin-cert", "", "client certificate (PEM) for meshca's remote mTLS admin listener "+
		"(crl.admin.remote); with --admin-key and --admin-ca")
	fl.StringVar(&f.key, "admin-key", "", "private key (PEM) of --admin-cert")
	fl.StringVar(&f.ca, "admin-ca", "", "CA certificates (PEM) that the remote admin listener's certificate "+
		"must chain to")
	f.tok.flags(cmd, false)
}

func (f *adminTLSFlags) set() bool { return f.cert != "" || f.key != "" || f.ca != "" }

// client returns the admin API client for addr: over mTLS when the flags are set, plain (loopback) with the
// admin token otherwise.
func (f *adminTLSFlags) client(addr string) (*admin.Client, error) {
	if !f.set() {
		tok, err := f.tok.token()
		if err != nil {
			return nil, err
		}
		return &admin.Client{Addr: addr, Token: tok}, nil
	}
	if f.cert == "" || f.key == "" || f.ca == "" {
		return nil, usageError{errors.New("--admin-cert, --admin-key and --admin-ca go together")}
	}
	tc, err := admin.ClientTLS(f.cert, f.key, f.ca)
	if err != nil {
		return nil, usageError{fmt.Errorf("--admin-cert/--admin-key/--admin-ca: %w", err)}
	}
	return &admin.Client{Addr: addr, TLS: tc}, nil
}
