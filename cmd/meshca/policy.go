package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/policy"
	"github.com/meshca/meshca/ca/policy/nslabels"
	"github.com/meshca/meshca/crl/admin"
	"github.com/meshca/meshca/csr"
	"github.com/meshca/meshca/internal/durtext"
)

// DevPolicyFile, in the dev directory, holds policy rules that serve --dev and policy explain --dev apply.
const DevPolicyFile = "policy.yaml"

// validatePolicy compiles the rules over the issuance settings and the configured backend names.
func (c *Config) validatePolicy() error {
	if len(c.Policy.Rules) == 0 || c.Issuance.Validate() != nil {
		return nil // no rules, or issuance reports its own problems
	}
	_, err := ca.CompileRules(c.Issuance, c.Policy, c.backendNames())
	return err
}

func (c *Config) backendNames() []string {
	out := make([]string, 0, len(c.Backends))
	for _, b := range c.Backends {
		out = append(out, b.Name)
	}
	return out
}

// namespaceLabels starts the Namespace label cache when a rule selects namespaces by label and meshca runs
// in a cluster; without a cluster such rules never match, which serve logs once.
func (a *app) namespaceLabels(ctx context.Context, cfg *Config, client kubernetes.Interface,
	log *slog.Logger) (func(string) (map[string]string, bool), error) {
	var selecting []string
	for _, r := range cfg.Policy.Rules {
		if r.Match.NamespaceSelector != nil {
			selecting = append(selecting, r.Name)
		}
	}
	if len(selecting) == 0 {
		return nil, nil
	}
	if client == nil {
		log.Warn("policy rules select namespaces by label, but meshca has no cluster (no kubernetes: section): "+
			"these rules never match", "rules", selecting)
		return nil, nil
	}
	c := nslabels.New(client)
	if err := c.Start(ctx, 30*time.Second); err != nil {
		return nil, err
	}
	return c.Labels, nil
}

// loadDevPolicy makes dir/policy.yaml, when present, the policyFile of the dev configuration: the rules of
// `make run`, re-read when the file changes.
func loadDevPolicy(dir string, cfg *Config) error {
	path := filepath.Join(dir, DevPolicyFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	cfg.PolicyFile = path
	return cfg.loadPolicyFile()
}

// explainOptions are the flags of policy explain.
type explainOptions struct {
	config, dev, adminAddr, ns, sa, csrFile, signer, keyType, labels, at string
	ttl                                                                  time.Duration
	json                                                                 bool
	tok                                                                  adminTokenFlag
}

// refused is policy explain's answer "this request would be refused": exit code 3, after the output.
type refused struct{}

func (refused) Error() string { return "the request would be refused" }
func (refused) ExitCode() int { return 3 }

func policyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Ask the signing policy what it would do",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return usageError{errors.New("a subcommand is required: explain")}
		},
	}
	var o explainOptions
	explain := &cobra.Command{
		Use:   "explain (--config FILE | --dev DIR | --admin-addr ADDR) --namespace NS --service-account SA",
		Short: "Print what meshca would decide for a request, and why, without issuing anything",
		Long: "explain runs the decision serve runs after authentication (the CSR's identity check, then the " +
			"policy rules over the issuance settings) and prints every step: the rules tried, the one that " +
			"decided, deny, signer, key type, lifetime, each DNS name and its constraint, the backends.\n" +
			"With --admin-addr it asks a running meshca (its loopback admin API) instead of reading a " +
			"configuration: the answer is that of the rules in force there, after any policyFile reload.\n" +
			"Exit codes: 0 the request would be served, 3 it would be refused, 1 the configuration or CSR " +
			"cannot be read, 2 a usage mistake.",
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			return runExplain(cmd.Context(), cmd.OutOrStdout(), o)
		}),
	}
	f := explain.Flags()
	f.StringVar(&o.config, "config", "", "meshca configuration `FILE`")
	f.StringVar(&o.dev, "dev", "", "the dev configuration of 'serve --dev DIR' (with DIR/policy.yaml)")
	f.StringVar(&o.adminAddr, "admin-addr", "", "ask the running meshca whose admin API listens at `ADDR` "+
		"(crl.admin.addr, default "+defaultAdminAddr+") instead of reading a configuration")
	o.tok.flags(explain, false)
	f.StringVar(&o.ns, "namespace", "", "the workload's namespace (required)")
	f.StringVar(&o.sa, "service-account", "", "the workload's service account (required)")
	f.StringVar(&o.csrFile, "csr", "", "PEM CSR `FILE` the workload would send (its key type and DNS names)")
	f.StringVar(&o.signer, "cert-signer", "", "CertSigner metadata (ISTIO_META_CERT_SIGNER)")
	f.StringVar(&o.keyType, "key-type", "", "key type without a CSR: "+strings.Join(csr.KeyTypes(), ", "))
	f.DurationVar(&o.ttl, "ttl", 0, "requested lifetime (validity_duration); 0 asks for the default")
	f.StringVar(&o.labels, "namespace-labels", "", "the Namespace's labels, k=v,k2=v2 (for label selectors)")
	f.StringVar(&o.at, "at", "", "decide at this RFC 3339 time instead of now (e.g. after a freeze ends)")
	f.BoolVar(&o.json, "json", false, "print JSON")
	explain.MarkFlagsMutuallyExclusive("config", "dev", "admin-addr")
	explain.MarkFlagsOneRequired("config", "dev", "admin-addr")
	explain.MarkFlagsMutuallyExclusive("csr", "key-type")
	_ = explain.MarkFlagRequired("namespace")
	_ = explain.MarkFlagRequired("service-account")
	cmd.AddCommand(explain)
	return cmd
}

func runExplain(ctx context.Context, w io.Writer, o explainOptions) error {
	explain := explainLocal
	if o.adminAddr != "" {
		explain = func(o explainOptions) (*admin.ExplainResponse, error) { return explainRemote(ctx, o) }
	}
	res, err := explain(o)
	if err != nil {
		return err
	}
	if err := printDecision(w, o.json, res); err != nil {
		return err
	}
	if !res.Decision.Allowed {
		return refused{}
	}
	return nil
}

// explainLocal answers from --config or --dev.
func explainLocal(o explainOptions) (*admin.ExplainResponse, error) {
	cfg, err := explainConfig(o)
	if err != nil {
		return nil, err
	}
	ask, err := explainAsk(o, cfg)
	if err != nil {
		return nil, err
	}
	d, err := ca.Explain(cfg.Issuance, cfg.Policy, cfg.backendNames(), ask)
	if err != nil {
		return nil, err
	}
	if d.Allowed && len(d.Backends) == 0 {
		d.Backends = cfg.backendNames()
	}
	return explained(ask, d), nil
}

func explainConfig(o explainOptions) (*Config, error) {
	if o.config != "" {
		return LoadConfig(o.config)
	}
	if _, err := os.Stat(filepath.Join(o.dev, "cacerts")); err != nil {
		return nil, fmt.Errorf("--dev %s: %w (run 'make run' or 'meshca init --dir %s' first)", o.dev, err, o.dev)
	}
	cfg, _, err := devConfig(o.dev, slog.New(slog.DiscardHandler))
	return cfg, err
}

// explainAsk builds the question from the flags; the identity is built as serve builds it from a caller. With
// no cfg (a remote explain) the flags are checked and the identity is left to the running meshca.
func explainAsk(o explainOptions, cfg *Config) (ca.Ask, error) {
	var errs []error
	var id csr.Identity
	var err error
	if cfg != nil {
		if id, err = cfg.Issuance.IdentityOf(&authn.Caller{Namespace: o.ns, ServiceAccount: o.sa}); err != nil {
			errs = append(errs, fmt.Errorf("--namespace/--service-account: %w", err))
		}
	}
	ask := ca.Ask{Identity: id, TTL: o.ttl, CertSigner: o.signer, KeyType: o.keyType, Now: time.Now()}
	if o.keyType != "" && !slices.Contains(csr.KeyTypes(), o.keyType) {
		errs = append(errs, fmt.Errorf("--key-type %q: use one of %s", bounded(o.keyType),
			strings.Join(csr.KeyTypes(), ", ")))
	}
	if o.at != "" {
		if ask.Now, err = time.Parse(time.RFC3339, o.at); err != nil {
			errs = append(errs, fmt.Errorf("--at %q: not RFC 3339 (2026-12-01T00:00:00Z)", bounded(o.at)))
		}
	}
	if o.labels != "" {
		if ask.NamespaceLabels, err = parseLabels(o.labels); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return ca.Ask{}, usageError{err}
	}
	if o.csrFile != "" {
		b, err := os.ReadFile(o.csrFile)
		if err != nil {
			return ca.Ask{}, err
		}
		if ask.CSR, err = csr.Parse(b); err != nil {
			return ca.Ask{}, fmt.Errorf("--csr %s: %w (serve would refuse it: %s)", o.csrFile, err,
				ca.Classify(err).Code)
		}
	}
	return ask, nil
}

// parseLabels reads k=v,k2=v2 (Kubernetes label syntax is checked only as far as '=' and ',').
func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--namespace-labels: %q is not key=value", bounded(kv))
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("--namespace-labels: %q is given twice", bounded(k))
		}
		out[k] = v
	}
	return out, nil
}

// printDecision writes the request, the trace and the decision, with the gRPC code a refusal would get. It
// prints what res says, so that a local and a remote explain print alike.
func printDecision(w io.Writer, asJSON bool, res *admin.ExplainResponse) error {
	d := &res.Decision
	if !d.Allowed {
		d.Err = errors.New(res.Error)
	}
	if asJSON {
		out := struct {
			Identity string `json:"identity"`
			*policy.Decision
			TTL    string `json:"ttl,omitempty"`
			Error  string `json:"error,omitempty"`
			Code   string `json:"code"`
			Reason string `json:"reason"`
		}{Identity: res.Identity, Decision: d, Code: res.Code, Reason: res.Reason}
		if d.Allowed {
			out.TTL = durtext.Short(d.TTL)
		} else {
			out.Error = res.Error
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if _, err := fmt.Fprintf(w, "request: %s%s\n", res.Identity, res.Request); err != nil {
		return err
	}
	if err := d.WriteText(w); err != nil {
		return err
	}
	if !d.Allowed {
		_, err := fmt.Fprintf(w, "serve would answer: %s (reason %s)\n", res.Code, res.Reason)
		return err
	}
	return nil
}

func askDetails(a ca.Ask) string {
	var parts []string
	if a.CertSigner != "" {
		parts = append(parts, fmt.Sprintf("CertSigner %q", a.CertSigner))
	}
	switch {
	case a.CSR != nil:
		parts = append(parts, "CSR key "+a.CSR.KeyType)
		if len(a.CSR.CSR.DNSNames) > 0 {
			parts = append(parts, "DNS "+strings.Join(a.CSR.CSR.DNSNames, " "))
		}
	case a.KeyType != "":
		parts = append(parts, "key "+a.KeyType)
	}
	if a.TTL != 0 {
		parts = append(parts, "lifetime "+durtext.Short(a.TTL))
	}
	if len(parts) == 0 {
		return ""
	}
	return ", " + strings.Join(parts, ", ")
}
