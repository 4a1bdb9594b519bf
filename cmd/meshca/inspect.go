package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/meshca/meshca/ca/expiry"
	"github.com/meshca/meshca/ca/expiry/kubescan"
	"github.com/meshca/meshca/internal/durtext"
	"github.com/meshca/meshca/internal/terminal"
)

// inspectOptions are the flags of meshca inspect.
type inspectOptions struct {
	urls                      []string
	cluster                   bool
	kubeconfig, kubeContext   string
	namespace, cacerts, optIn string
	within                    withinValue
	json                      bool
	color                     string
}

// exitStatus ends a command with a status of its own (meshca inspect's findings) after it wrote its output.
type exitStatus struct{ code int }

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func inspectCommand() *cobra.Command {
	o := inspectOptions{within: withinValue(7 * 24 * time.Hour)}
	cmd := &cobra.Command{
		Use:   "inspect [PATH...] [--url URL]... [--cluster | --kubeconfig FILE]",
		Short: "Report certificate and CRL expiry of files, a running meshca or a cluster; exit 1 if any is near",
		Long: "inspect reads certificates and CRLs from PEM files and directories (a cacerts directory, istio-agent " +
			"OUTPUT_CERTS, mounted Secrets), from running meshca instances' /roots.pem and /crl.pem, and from a " +
			"cluster (Secrets labelled istio.io/key-and-cert=true or meshca.io/expiry-scan=true, the cacerts Secret, " +
			"the istio-ca-root-cert and istio-ca-crl ConfigMaps). It prints subject or SPIFFE ID, issuer, serial, " +
			"validity, days left, key type and warnings: expired, expiring within --within, chain does not verify, " +
			"key does not match, CRL badly signed, stale or past nextUpdate. Soonest expiry first.\n\n" +
			"Exit status: 0 nothing within the threshold; 1 a certificate expires within it or has expired, or a CRL " +
			"is stale or expired; 2 a usage mistake; 3 otherwise a check failed or a source could not be read; 4 the " +
			"report could not be written.",
		Example: "  meshca inspect /etc/cacerts\n" +
			"  meshca inspect --url http://127.0.0.1:15014 --within 30d\n" +
			"  meshca inspect --kubeconfig ~/.kube/config --namespace istio-system --json",
		RunE: action(func(cmd *cobra.Command, args []string) error {
			return inspect(cmd, o, args)
		}),
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.urls, "url", nil, "a running meshca's HTTP side port, e.g. http://meshca.istio-system:15014 "+
		"(repeatable)")
	f.BoolVar(&o.cluster, "cluster", false, "scan the cluster of the current kubeconfig context ($KUBECONFIG, "+
		"~/.kube/config, or in-cluster)")
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "scan the cluster of this kubeconfig `FILE` (implies --cluster)")
	f.StringVar(&o.kubeContext, "context", "", "kubeconfig context (implies --cluster)")
	f.StringVar(&o.namespace, "namespace", "", "scan labelled Secrets and ConfigMaps in this namespace only "+
		"(default every namespace)")
	f.StringVar(&o.cacerts, "cacerts-secret", "istio-system/cacerts", "the CA Secret as namespace/name; - for none")
	f.StringVar(&o.optIn, "selector", kubescan.DefaultOptInSelector, "label selector of further Secrets to scan "+
		"(kubernetes.io/tls ones, for example); - for none")
	f.Var(&o.within, "within", "warn about what expires within this `DURATION` (e.g. 7d, 36h)")
	f.BoolVar(&o.json, "json", false, "print JSON instead of a table")
	f.StringVar(&o.color, "color", "auto", "colour the table: auto (on a terminal, unless NO_COLOR is set), "+
		"always or never")
	return cmd
}

func inspect(cmd *cobra.Command, o inspectOptions, paths []string) error {
	stdout := cmd.OutOrStdout()
	var colour bool
	switch o.color {
	case "auto":
		colour = terminal.Is(stdout) && os.Getenv("NO_COLOR") == ""
	case "always":
		colour = true
	case "never":
	default:
		return usageError{fmt.Errorf("--color %q: use auto, always or never", bounded(o.color))}
	}
	o.cluster = o.cluster || o.kubeconfig != "" || o.kubeContext != ""
	if len(paths)+len(o.urls) == 0 && !o.cluster {
		return usageError{errors.New("nothing to inspect: name files or directories, --url, --cluster or " +
			"--kubeconfig")}
	}
	args := expiry.InspectArgs{Paths: paths, URLs: o.urls, Within: time.Duration(o.within), JSON: o.json,
		Color: colour, Stderr: cmd.ErrOrStderr()}
	if o.cluster {
		sets, err := listCluster(cmd, o)
		if err != nil {
			return err
		}
		args.Sets = sets
	}
	if code := expiry.Inspect(cmd.Context(), args, stdout); code != expiry.ExitOK {
		return exitStatus{code}
	}
	return nil
}

// listCluster reads once what the scanner would follow in the cluster.
func listCluster(cmd *cobra.Command, o inspectOptions) ([]*expiry.Set, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if o.kubeconfig != "" {
		rules.ExplicitPath = o.kubeconfig
	}
	restCfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: o.kubeContext}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	sets, err := kubescan.List(cmd.Context(), kubescan.Config{Client: client, Namespace: o.namespace,
		CacertsSecret: o.cacerts, OptInSelector: o.optIn})
	if err != nil {
		return nil, usageError{err} // List fails only on invalid settings: --namespace, --cacerts-secret, --selector
	}
	return sets, nil
}

// withinValue is a positive duration flag that also takes whole or fractional days: 7d, 1.5d, 36h.
type withinValue time.Duration

func (w *withinValue) String() string {
	d := time.Duration(*w)
	if d%(24*time.Hour) == 0 && d > 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return durtext.Short(d)
}

func (w *withinValue) Set(s string) error {
	d, err := parseWithin(s)
	if err != nil {
		return err
	}
	*w = withinValue(d)
	return nil
}

func (w *withinValue) Type() string { return "duration" }

// maxWithin bounds --within: a century is longer than any certificate needs checking for.
const maxWithin = 100 * 365 * 24 * time.Hour

// parseWithin reads a positive duration: a Go duration (36h, 90m) or a number of days (7d, 1.5d).
func parseWithin(s string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || n != n || n*24 > float64(maxWithin/time.Hour) {
			return 0, fmt.Errorf("%q is not a number of days such as 7d", bounded(s))
		}
		d = time.Duration(n * float64(24*time.Hour))
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q is not a duration such as 7d or 36h", bounded(s))
		}
	}
	if d <= 0 || d > maxWithin {
		return 0, fmt.Errorf("%q: use a positive duration of at most 100 years", bounded(s))
	}
	return d, nil
}
