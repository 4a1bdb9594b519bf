package crl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// OutputFile is the name of the file DirOutput writes: the name istiod reads in cacerts and Istio mounts.
const OutputFile = "ca-crl.pem"

// DirOutputConfig configures a DirOutput.
type DirOutputConfig struct {
	// Dir is the directory that receives ca-crl.pem (crl.outputDir). It must exist.
	Dir string
	// Source gives the content and says when it changes; normally the *Publisher.
	Source interface {
		PEM() ([]byte, bool)
		Changed() <-chan struct{}
	}
	// RetryInterval is how long to wait before writing again after a failed write. Default 5s.
	RetryInterval time.Duration
	// Logger receives write failures and recoveries; default slog.Default().
	Logger *slog.Logger
	// Metrics counts failed writes (target "dir"); optional.
	Metrics *Metrics
}

// DirOutput keeps Dir/ca-crl.pem equal to its Source's ca-crl.pem, for operators who mount a directory into
// istiod's cacerts or a sidecar rather than read the ConfigMaps. Each change is written to a temporary file,
// fsynced and renamed over the old one, so a reader never sees part of a CRL set.
type DirOutput struct {
	cfg  DirOutputConfig
	path string
}

// NewDirOutput checks that cfg.Dir is a directory and returns the DirOutput for it.
func NewDirOutput(cfg DirOutputConfig) (*DirOutput, error) {
	if cfg.Source == nil {
		return nil, errors.New("crl: the directory output needs a source")
	}
	fi, err := os.Stat(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("crl.outputDir: %w (create the directory, or mount a volume there)", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("crl.outputDir: %s is not a directory", cfg.Dir)
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	o := &DirOutput{cfg: cfg, path: filepath.Join(cfg.Dir, OutputFile)}
	removeTemps(o.path)
	return o, nil
}

// Path returns the file DirOutput writes.
func (o *DirOutput) Path() string { return o.path }

// Run writes the file at once when the source is ready and again at every change, until ctx ends; then it
// returns nil. Before the source's first set nothing is written, so a starting meshca never blanks the file.
// A failed write is logged, counted and retried every RetryInterval.
func (o *DirOutput) Run(ctx context.Context) error {
	var last []byte
	written, failing := false, false
	for {
		changed := o.cfg.Source.Changed()
		data, ok := o.cfg.Source.PEM()
		var retry <-chan time.Time
		if ok && (!written || !bytes.Equal(data, last)) {
			if err := writeAtomic(o.path, data, 0o644); err != nil {
				if o.cfg.Metrics != nil {
					o.cfg.Metrics.PublishError(TargetDir)
				}
				if !failing {
					o.cfg.Logger.Error("cannot write ca-crl.pem to crl.outputDir; retrying", "path", o.path,
						"error", err)
				}
				failing = true
				retry = time.After(o.cfg.RetryInterval)
			} else {
				if failing {
					o.cfg.Logger.Info("ca-crl.pem written to crl.outputDir again", "path", o.path)
				}
				failing, written, last = false, true, data
				o.cfg.Logger.Debug("ca-crl.pem written", "path", o.path, "bytes", len(data))
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-retry:
		}
	}
}
