package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/csr"
	"github.com/meshca/meshca/internal/devtoken"
)

// initDev creates dir/cacerts and the dev token issuer key when missing; it reports whether it created the CA.
// It never replaces part of a CA set, and an existing set must load.
func initDev(dir, trustDomain string) (bool, error) {
	if err := csr.ValidateTrustDomain(trustDomain); err != nil {
		return false, usageError{fmt.Errorf("--trust-domain %q: %w", bounded(trustDomain), err)}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, err
	}
	cacerts := filepath.Join(dir, "cacerts")
	if err := checkExistingCA(cacerts); err != nil {
		return false, err
	}
	created, err := file.Init(cacerts, file.GenerateOptions{Organization: trustDomain, RootCRL: true})
	if err != nil {
		return false, fmt.Errorf("creating the dev CA: %w", err)
	}
	if _, err := initDevMLDSA(dir, trustDomain); err != nil {
		return false, err
	}
	if _, err := initDevComposite(dir, trustDomain); err != nil {
		return false, err
	}
	keyPath := filepath.Join(dir, devtoken.KeyFile)
	if _, err := os.Stat(keyPath); errors.Is(err, os.ErrNotExist) {
		d, err := devtoken.Generate("")
		if err != nil {
			return false, err
		}
		if err := d.WriteKey(keyPath); err != nil {
			return false, err
		}
	} else if err != nil {
		return false, err
	}
	return created, nil
}

// caFiles is the Istio cacerts layout.
var caFiles = []string{file.CACertFile, file.CAKeyFile, file.CertChainFile, file.RootCertFile}

// checkExistingCA accepts an empty or missing cacerts directory, or a whole set that loads.
func checkExistingCA(cacerts string) error {
	var present, missing []string
	for _, f := range caFiles {
		if _, err := os.Stat(filepath.Join(cacerts, f)); err == nil {
			present = append(present, f)
		} else if errors.Is(err, os.ErrNotExist) {
			missing = append(missing, f)
		} else {
			return err
		}
	}
	switch {
	case len(present) == 0:
		return nil
	case len(missing) > 0:
		return fmt.Errorf("%s holds %s but not %s: refusing to replace part of a CA; "+
			"complete the set or remove it", cacerts, strings.Join(present, ", "), strings.Join(missing, ", "))
	}
	b, err := file.New(context.Background(), file.Config{Dir: cacerts,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return fmt.Errorf("%s holds a CA that does not load: %w; fix it or remove it", cacerts, err)
	}
	return b.Close()
}

// devTrustDomain is the trust domain 'meshca init' wrote into the dev root's Organization.
func devTrustDomain(cacerts string) (string, bool) {
	b, err := os.ReadFile(filepath.Join(cacerts, file.RootCertFile))
	if err != nil {
		return "", false
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return "", false
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil || len(c.Subject.Organization) != 1 || csr.ValidateTrustDomain(c.Subject.Organization[0]) != nil {
		return "", false
	}
	return c.Subject.Organization[0], true
}

// checkTokenFlags refuses claims the dev issuer should never sign.
func checkTokenFlags(ns, sa, aud string, ttl time.Duration) error {
	var errs []error
	if ttl <= 0 {
		errs = append(errs, fmt.Errorf("--ttl %s: a token lifetime must be positive", ttl))
	}
	if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("--namespace %q: %s", bounded(ns), strings.Join(msgs, "; ")))
	}
	if msgs := validation.IsDNS1123Subdomain(sa); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("--service-account %q: %s", bounded(sa), strings.Join(msgs, "; ")))
	}
	if strings.TrimSpace(aud) == "" {
		errs = append(errs, fmt.Errorf("--audience: empty; meshca accepts %s by default", authn.DefaultAudience))
	}
	if err := errors.Join(errs...); err != nil {
		return usageError{err}
	}
	return nil
}

func initCommand() *cobra.Command {
	var dir, td string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write a dev root and intermediate (Istio cacerts layout) and a dev token key",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			created, err := initDev(dir, td)
			if err != nil {
				return err
			}
			cacerts := filepath.Join(dir, "cacerts")
			if created {
				fmt.Fprintf(cmd.OutOrStdout(), "wrote a dev root and intermediate for %s to %s "+
					"(ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem, and the root's CRL in ca-crl.pem), "+
					"an ML-DSA-65 pair to %s and a composite ML-DSA-65+ECDSA-P256 pair to %s\n",
					td, cacerts, filepath.Join(dir, mldsaCACerts), filepath.Join(dir, compositeCACerts))
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "%s already holds a CA that loads; left it alone\n", cacerts)
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&dir, "dir", ".dev",
		"directory to create: DIR/cacerts (Istio cacerts layout) and the dev token key")
	cmd.Flags().StringVar(&td, "trust-domain", "cluster.local", "trust domain, written in the CA subjects; "+
		"serve --dev issues in it")
	return cmd
}

func tokenCommand() *cobra.Command {
	var dir, ns, sa, aud, pod, node string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Print a dev service-account token that 'serve --dev DIR' trusts",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			if err := checkTokenFlags(ns, sa, aud, ttl); err != nil {
				return err
			}
			d, err := devtoken.Load("", filepath.Join(dir, devtoken.KeyFile))
			if err != nil {
				return fmt.Errorf("%w (run 'meshca init --dir %s' first)", err, dir)
			}
			tok, err := d.Mint(devtoken.Claims{Namespace: ns, ServiceAccount: sa, Audiences: []string{aud}, TTL: ttl,
				PodName: pod, NodeName: node})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", ".dev", "dev directory made by 'meshca init' or 'meshca serve --dev'")
	f.StringVar(&ns, "namespace", "default", "service account namespace")
	f.StringVar(&sa, "service-account", "default", "service account name")
	f.StringVar(&aud, "audience", authn.DefaultAudience, "token audience")
	f.DurationVar(&ttl, "ttl", time.Hour, "token lifetime")
	f.StringVar(&pod, "pod", "", "pod name claim (optional)")
	f.StringVar(&node, "node", "", "node name claim (optional)")
	return cmd
}
