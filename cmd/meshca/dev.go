package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/internal/devtoken"
)

// initDev creates dir/cacerts and the dev token issuer key when missing; it reports whether it created the CA.
func initDev(dir, trustDomain string) (bool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, err
	}
	created, err := file.Init(filepath.Join(dir, "cacerts"), file.GenerateOptions{Organization: trustDomain})
	if err != nil {
		return false, fmt.Errorf("creating the dev CA: %w", err)
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

func initCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", ".dev", "directory to create: DIR/cacerts (Istio cacerts layout) and the dev token key")
	td := fs.String("trust-domain", "cluster.local", "trust domain, written in the CA subjects")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	created, err := initDev(*dir, *td)
	if err != nil {
		return err
	}
	cacerts := filepath.Join(*dir, "cacerts")
	if created {
		fmt.Fprintf(stdout, "wrote a dev root and intermediate to %s "+
			"(ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem)\n", cacerts)
	} else {
		fmt.Fprintf(stdout, "%s already holds a CA; left it alone\n", cacerts)
	}
	return nil
}

func tokenCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", ".dev", "dev directory made by 'meshca init' or 'meshca serve --dev'")
	ns := fs.String("namespace", "default", "service account namespace")
	sa := fs.String("service-account", "default", "service account name")
	aud := fs.String("audience", authn.DefaultAudience, "token audience")
	ttl := fs.Duration("ttl", time.Hour, "token lifetime")
	pod := fs.String("pod", "", "pod name claim (optional)")
	node := fs.String("node", "", "node name claim (optional)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	d, err := devtoken.Load("", filepath.Join(*dir, devtoken.KeyFile))
	if err != nil {
		return fmt.Errorf("%w (run 'meshca init --dir %s' first)", err, *dir)
	}
	tok, err := d.Mint(devtoken.Claims{Namespace: *ns, ServiceAccount: *sa, Audiences: []string{*aud}, TTL: *ttl,
		PodName: *pod, NodeName: *node})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}
