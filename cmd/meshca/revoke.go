package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshca/meshca/crl"
	"github.com/meshca/meshca/crl/admin"
)

func revokeCommand() *cobra.Command {
	var req admin.RevokeRequest
	var addr string
	var quarantine time.Duration
	var certFile string
	var off offlineOptions
	var tf adminTLSFlags
	cmd := &cobra.Command{
		Use:   "revoke (--serial HEX [--ca ID] | --cert FILE | --identity ID [--quarantine D]) [--reason R]",
		Short: "Revoke a certificate, or every certificate of an identity, in a running meshca",
		Long: "revoke asks a running meshca (its admin API, loopback only) to revoke one certificate by serial, or " +
			"every unexpired certificate it issued to an identity. The next CRLs list them at once; with " +
			"--quarantine the identity also gets no new certificate for that long. In Kubernetes, reach the admin " +
			"API with 'kubectl -n istio-system exec deploy/meshca -- meshca revoke ...' (it reads the admin " +
			"token from --admin-token-file), or port-forward 15016 with a copy of the token.",
		Example: "  meshca revoke --serial 5f:3a:... --reason keyCompromise\n" +
			"  meshca revoke --identity spiffe://cluster.local/ns/shop/sa/cart --reason keyCompromise --quarantine 24h",
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			if btoi(req.Serial != "")+btoi(certFile != "")+btoi(req.Identity != "") != 1 {
				return usageError{errors.New("name exactly one of --serial, --cert and --identity")}
			}
			if certFile != "" {
				b, err := os.ReadFile(certFile)
				if err != nil {
					return usageError{fmt.Errorf("--cert: %w", err)}
				}
				req.Certificate = string(b)
			}
			if quarantine < 0 || (quarantine > 0 && req.Identity == "") {
				return usageError{errors.New("--quarantine takes a positive duration and goes with --identity")}
			}
			if quarantine > 0 {
				req.Quarantine = quarantine.String()
			}
			svc, done, err := adminService(cmd.Context(), &off, addr, &tf)
			if err != nil {
				return err
			}
			defer done()
			res, err := svc.Revoke(cmd.Context(), req)
			if errors.Is(err, admin.ErrRefused) || isRequestError(err) {
				return usageError{err}
			}
			if err != nil {
				return err
			}
			printRevoked(cmd.OutOrStdout(), res)
			for _, w := range res.Warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&req.Serial, "serial", "", "serial number of the certificate, hex (colons allowed)")
	f.StringVar(&certFile, "cert", "", "PEM file of the certificate to revoke (instead of --serial; also revokes "+
		"at a Vault no_store role)")
	f.StringVar(&req.CA, "ca", "", "issuing CA id (ski:<hex>, see 'meshca crl'), when meshca's inventory lacks "+
		"the serial")
	f.StringVar(&req.Identity, "identity", "", "SPIFFE ID: revoke every unexpired certificate meshca issued to it")
	f.StringVar(&req.Reason, "reason", "", "RFC 5280 reason: keyCompromise, superseded, cessationOfOperation, ... "+
		"(default unspecified)")
	f.DurationVar(&quarantine, "quarantine", 0, "with --identity: refuse it new certificates for this long")
	f.StringVar(&addr, "admin-addr", defaultAdminAddr, "meshca's admin API address")
	off.flags(cmd)
	tf.flags(cmd)
	return cmd
}

// isRequestError reports a mistake in what was asked (offline, without the admin API's 400).
func isRequestError(err error) bool {
	return errors.Is(err, crl.ErrInvalidRequest) || errors.Is(err, crl.ErrInvalidReason) ||
		errors.Is(err, crl.ErrUnknownIssuer)
}

func printRevoked(w io.Writer, res *admin.RevokeResponse) {
	if len(res.Revoked) == 0 {
		fmt.Fprintln(w, "no unexpired certificate of that identity in meshca's inventory")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERIAL\tIDENTITY\tREASON\tCRL NUMBER\tNOTE")
	for _, r := range res.Revoked {
		note := ""
		if r.Existing {
			note = "already revoked"
		}
		if r.Backend != "" {
			note = strings.TrimPrefix(note+", revoked at backend "+r.Backend, ", ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", r.Serial, r.Identity, r.Reason, r.CRLNumber, note)
	}
	tw.Flush()
	if !res.Complete {
		fmt.Fprintln(w, "the inventory dropped records: certificates of this identity may be missing above")
	}
	if res.QuarantineUntil != nil {
		fmt.Fprintf(w, "quarantined until %s\n", res.QuarantineUntil.UTC().Format(time.RFC3339))
	}
}

func crlCommand() *cobra.Command {
	var addr string
	var asPEM bool
	var off offlineOptions
	var tf adminTLSFlags
	cmd := &cobra.Command{
		Use:   "crl [--pem]",
		Short: "Show the CRLs a running meshca publishes, one per CA of its chains, or print its ca-crl.pem",
		Long: "crl reports, for every CA of the chains a running meshca serves, the CRL it publishes (origin, " +
			"number, thisUpdate, nextUpdate, entries) and whether it is current, as Envoy's CRL_CHECK_ALL needs. " +
			"It exits 1 when not every CA is covered. --pem prints the ca-crl.pem being published instead.",
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			c, done, err := adminService(cmd.Context(), &off, addr, &tf)
			if err != nil {
				return err
			}
			defer done()
			if asPEM {
				b, err := c.PEM(cmd.Context())
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(b)
				return err
			}
			res, err := c.CRLs(cmd.Context())
			if err != nil {
				return err
			}
			printCRLs(cmd.OutOrStdout(), res)
			if !res.Complete {
				return errors.New("not every CA has a current CRL: Envoy refuses certificates under those CAs " +
					"(or, with an empty ca-crl.pem, nothing is checked); see docs/runbooks.md")
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&addr, "admin-addr", defaultAdminAddr, "meshca's admin API address")
	cmd.Flags().BoolVar(&asPEM, "pem", false, "print the published ca-crl.pem")
	off.flags(cmd)
	tf.flags(cmd)
	return cmd
}

func printCRLs(w io.Writer, res *admin.CRLsResponse) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CA\tSUBJECT\tORIGIN\tNUMBER\tNEXT UPDATE\tENTRIES\tSTATUS")
	for _, c := range res.CRLs {
		next, status := "-", "current"
		if c.NextUpdate != nil {
			next = c.NextUpdate.UTC().Format(time.RFC3339)
		}
		if c.Error != "" {
			status = c.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", c.CA, c.Subject, or(c.Origin, "-"), or(c.Number, "-"), next,
			c.Entries, status)
	}
	tw.Flush()
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
