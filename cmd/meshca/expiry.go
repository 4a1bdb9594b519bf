package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"

	"github.com/meshca/meshca/ca/expiry"
	"github.com/meshca/meshca/ca/expiry/kubescan"
	"github.com/meshca/meshca/ca/server"
)

// ExpiryConfig is the expiry: section: the per-identity tracker (its keys sit at the section's top level) and
// the expiry scanner (scan:).
type ExpiryConfig struct {
	expiry.TrackerConfig
	// Scan configures the expiry scanner that serve runs beside the tracker.
	Scan ScanConfig `json:"scan"`
}

// ScanConfig is expiry.scan: which files, directories and cluster objects serve scans for the
// meshca_scanned_* gauges.
type ScanConfig struct {
	// Disabled turns the scanner off.
	Disabled bool `json:"disabled,omitempty"`
	// Paths are PEM files and directories to scan (cacerts, istio-agent OUTPUT_CERTS, mounted Secrets). Unset,
	// it is the dir of every file backend, so the CA's own files are checked (chain, key, CRL freshness).
	Paths []string `json:"paths,omitempty"`
	// Interval is how often the paths are read again. Default 30s.
	Interval time.Duration `json:"interval,omitempty"`
	// MaxSeries caps the scanned certificate and CRL series; those expiring soonest are kept. Default 10000.
	MaxSeries int `json:"maxSeries,omitempty"`
	// Kubernetes, when set (an empty mapping takes every default), follows the cluster's certificate Secrets
	// and meshca's ConfigMaps with informers. Cluster-wide Secrets need manifests/components/expiry-scanner.
	Kubernetes *kubescan.Config `json:"kubernetes,omitempty"`
}

// Validate reports every problem with the section at once, with the keys as the file names them.
func (c *ExpiryConfig) Validate() error {
	errs := []error{inSection(c.TrackerConfig.Validate(), "expiry", "expiry")}
	s := c.Scan
	for i, p := range s.Paths {
		if p == "" {
			errs = append(errs, fmt.Errorf("expiry.scan.paths[%d]: empty; name a file or directory", i))
		}
	}
	if s.Interval < 0 {
		errs = append(errs, fmt.Errorf("expiry.scan.interval: %s is negative", s.Interval))
	}
	inv := expiry.InventoryConfig{MaxSeries: s.MaxSeries}
	errs = append(errs, inSection(inv.Validate(), "expiry", "expiry.scan"))
	if s.Kubernetes != nil {
		errs = append(errs, inSection(s.Kubernetes.Validate(), "kubescan", "expiry.scan.kubernetes"))
	}
	return errors.Join(errs...)
}

// scanPaths is what the file scanner reads: the configured paths, or the file backends' directories.
func (c *Config) scanPaths() []string {
	if c.Expiry.Scan.Disabled {
		return nil
	}
	if c.Expiry.Scan.Paths != nil {
		return c.Expiry.Scan.Paths
	}
	var paths []string
	for _, b := range c.Backends {
		if b.File != nil && b.File.Dir != "" {
			paths = append(paths, b.File.Dir)
		}
	}
	return paths
}

// startExpiry exports the serving certificate's expiry and starts the expiry scanner: files in every mode,
// and the cluster's objects when expiry.scan.kubernetes is set.
func (a *app) startExpiry(cfg *Config, log *slog.Logger, reg prometheus.Registerer, client kubernetes.Interface,
	srv *server.Server) error {
	if err := expiry.RegisterServing(reg, srv.ServingCertificate); err != nil {
		return err
	}
	sc := cfg.Expiry.Scan
	paths := cfg.scanPaths()
	if sc.Disabled || (len(paths) == 0 && sc.Kubernetes == nil) {
		return nil
	}
	log = log.With("component", "expiry-scanner")
	inv, err := expiry.NewInventory(expiry.InventoryConfig{MaxSeries: sc.MaxSeries, Registerer: reg})
	if err != nil {
		return err
	}
	if len(paths) > 0 {
		w, err := expiry.NewFileWatcher(expiry.FilesConfig{Paths: paths, Interval: sc.Interval, Inventory: inv,
			Logger: log})
		if err != nil {
			return fmt.Errorf("expiry.scan: %w", err)
		}
		a.run = append(a.run, func(ctx context.Context) error { w.Run(ctx); return nil })
	}
	if sc.Kubernetes != nil {
		kc := *sc.Kubernetes
		kc.Client, kc.Inventory, kc.Logger = client, inv, log
		s, err := kubescan.New(kc)
		if err != nil {
			return fmt.Errorf("expiry.scan.kubernetes: %w", err)
		}
		// A scanner that cannot list (RBAC, an unreachable API server) must not stop the CA: it says so, and
		// its informers keep retrying in the background.
		a.run = append(a.run, func(ctx context.Context) error {
			if err := s.Run(ctx); err != nil && ctx.Err() == nil {
				log.Error("expiry scanner not synced; retrying in the background", "error", err.Error())
			}
			return nil
		})
	}
	return nil
}
