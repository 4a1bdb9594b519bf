package main

import (
	"crypto/x509"
	"log/slog"
	"sync/atomic"

	"github.com/meshca/meshca/backends/file"
	"github.com/meshca/meshca/rotation"
)

// caSwitch joins the file backends that hold a next CA (backends[].file.nextDir) and the rotation controller:
// the backends start first and sign with the CA that chains to the controller's signing root once it exists;
// the controller takes the next root from the first of them and checks it before staging and activating.
type caSwitch struct {
	controller atomic.Pointer[rotation.Controller]
	first      *file.Backend // the first file backend with nextDir, or nil
}

// signingRoot is file.Config.SigningRoot: the controller's signing root, nil before it starts or without a
// rotation section.
func (s *caSwitch) signingRoot() *x509.Certificate {
	if c := s.controller.Load(); c != nil {
		return c.SigningRoot()
	}
	return nil
}

// fileConfig gives fc, one file backend's configuration, the signing root when it has a nextDir.
func (s *caSwitch) fileConfig(fc *file.Config) {
	if fc.NextDir != "" {
		fc.SigningRoot = s.signingRoot
	}
}

// started records a file backend once it runs.
func (s *caSwitch) started(fc *file.Config, b *file.Backend) {
	if fc.NextDir != "" && s.first == nil {
		s.first = b
	}
}

// rotationConfig gives the rotation controller the backend that switches, if any.
func (s *caSwitch) rotationConfig(rc *rotation.Config) {
	if s.first != nil {
		rc.CASwitch = s.first
	}
}

// bind makes c the source of the signing root.
func (s *caSwitch) bind(c *rotation.Controller) { s.controller.Store(c) }

// unused warns that a nextDir is configured without a rotation section, which alone could switch to it.
func (s *caSwitch) unused(log *slog.Logger) {
	if s.first != nil && log != nil {
		log.Warn("backends[].file.nextDir is set but there is no rotation section: meshca never signs with the " +
			"next CA (docs/root-rotation.md)")
	}
}
