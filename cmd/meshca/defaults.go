package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/expiry"
	"github.com/meshca/meshca/ca/policy"
)

// printCommand is meshca config print: a file as meshca reads it, or with --defaults the configuration serve
// runs with, every default filled in.
func printCommand() *cobra.Command {
	var defaults bool
	cmd := &cobra.Command{
		Use:   "print (FILE | --defaults [FILE])",
		Short: "Print FILE as meshca reads it (YAML, durations with units), or with --defaults every effective value",
		Long: "print decodes and checks FILE as 'config validate' does and prints it back as YAML with durations " +
			"in units. With --defaults it prints the full effective configuration instead: every setting FILE " +
			"leaves out at the default serve applies. Without FILE, --defaults prints the defaults of the " +
			"sections every configuration has; optional sections (backends, kubernetes, trustBundle, " +
			"expiry.scan.kubernetes) show their defaults once FILE sets them.",
		Example: "  meshca config print /etc/meshca/config.yaml\n" +
			"  meshca config print --defaults /etc/meshca/config.yaml\n" +
			"  meshca config print --defaults",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 && !defaults {
				return fmt.Errorf("accepts FILE, or --defaults without one")
			}
			return cobra.MaximumNArgs(1)(cmd, args)
		},
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c := &Config{}
			if len(args) == 1 {
				var err error
				if c, err = LoadConfig(args[0]); err != nil {
					return err
				}
			}
			if defaults {
				c = c.withDefaults()
			}
			if c.PolicyFile != "" {
				c.Policy = policy.Config{} // read from policyFile; printing both would not load again
			}
			out, err := encodeConfig(c)
			if err != nil {
				return err
			}
			if defaults && len(args) == 0 {
				out = append([]byte("# meshca's defaults. Required settings (issuance.trustDomain, backends, "+
					"authn.issuers or kubernetes.tokenReview) are empty.\n"), out...)
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		}),
	}
	cmd.Flags().BoolVar(&defaults, "defaults", false, "fill in every default: the full effective configuration")
	return cmd
}

// withDefaults returns a copy of c with every section's defaults filled in, as the packages apply them when
// serve starts: the configuration serve runs with.
func (c *Config) withDefaults() *Config {
	d := *c
	d.Issuance = c.Issuance.WithDefaults()
	d.Server = c.Server.WithDefaults()
	d.Authn = c.Authn.WithDefaults()
	if d.Authn.TokenIssuers == nil {
		d.Authn.TokenIssuers = []authn.TokenIssuerConfig{} // printed as [], not null
	}
	if d.SignTimeout == 0 {
		d.SignTimeout = ca.DefaultSignTimeout
	}
	if d.AdminTokenFile == "" && (c.CRL != nil || c.Rotation != nil) {
		d.AdminTokenFile = defaultAdminTokenFile
	}
	d.Backends = make([]BackendConfig, len(c.Backends))
	for n, b := range c.Backends {
		if b.File != nil {
			f := b.File.WithDefaults()
			b.File = &f
		}
		if b.Vault != nil {
			v := b.Vault.WithDefaults()
			b.Vault = &v
		}
		if b.StepCA != nil {
			s := b.StepCA.WithDefaults()
			b.StepCA = &s
		}
		d.Backends[n] = b
	}
	if c.Kubernetes != nil {
		k := c.Kubernetes.WithDefaults()
		d.Kubernetes = &k
	}
	if c.TrustBundle != nil {
		t := c.TrustBundle.WithDefaults()
		d.TrustBundle = &t
	}
	d.Expiry.TrackerConfig = c.Expiry.TrackerConfig.WithDefaults()
	if s := &d.Expiry.Scan; !s.Disabled {
		s.Paths = c.scanPaths()
		if s.Interval == 0 {
			s.Interval = expiry.DefaultFilesInterval
		}
		if s.MaxSeries == 0 {
			s.MaxSeries = expiry.DefaultMaxSeries
		}
		if s.Kubernetes != nil {
			k := s.Kubernetes.WithDefaults()
			s.Kubernetes = &k
		}
	}
	return &d
}
