package vault

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"

	"github.com/meshca/meshca/backends"
)

// refreshCAChain fetches the issuer's certificate and chain, orders them up to one of anchors, and installs
// the result.
func (b *Backend) refreshCAChain(ctx context.Context, anchors []*x509.Certificate) error {
	ref := b.cfg.IssuerRef
	if ref == "" {
		ref = "default"
	}
	path := b.cfg.Mount + "/issuer/" + ref + "/json"
	cctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	sec, err := b.client.Logical().ReadWithContext(cctx, path)
	if err != nil {
		return b.classify(cctx, "reading the issuer", path, err)
	}
	if sec == nil || sec.Data == nil {
		return fmt.Errorf("vault: %s not found: check mount and issuerRef, and that the mount has an issuer", path)
	}
	issuer, candidates, err := parseIssued(sec.Data)
	if err != nil {
		return fmt.Errorf("vault: issuer %s: %w", path, err)
	}
	chain := []*x509.Certificate{issuer}
	if !isAnchor(issuer, anchors) {
		if chain, err = buildChain(issuer, candidates, anchors, b.cfg.Clock()); err != nil {
			return fmt.Errorf("vault: issuer %s does not chain to the configured roots: %w", path, err)
		}
	}
	b.ca.Store(newCAState(chain, anchors))
	return nil
}

func (b *Backend) pins() [][32]byte {
	pins := make([][32]byte, 0, len(b.cfg.RootFingerprints))
	for _, s := range b.cfg.RootFingerprints {
		fp, _ := parseFingerprint(s) // validated
		pins = append(pins, fp)
	}
	return pins
}

// configuredAnchors reads the trust anchors from rootsFile or rootsPEM, checked against the pins if any. It
// returns nil when the anchors are to be found by fingerprint among the mount's issuers.
func (b *Backend) configuredAnchors() ([]*x509.Certificate, error) {
	var raw []byte
	switch {
	case b.cfg.RootsFile != "":
		var err error
		if raw, err = b.cfg.ReadFile(b.cfg.RootsFile); err != nil {
			return nil, fmt.Errorf("vault: reading rootsFile: %w", err)
		}
	case b.cfg.RootsPEM != "":
		raw = []byte(b.cfg.RootsPEM)
	default:
		return nil, nil
	}
	anchors, err := backends.ParseCertificates(raw)
	if err != nil {
		return nil, fmt.Errorf("vault: trust anchors: %w", err)
	}
	pins := b.pins()
	for _, a := range anchors {
		if len(pins) > 0 && !slices.Contains(pins, fingerprintBytes(a)) {
			return nil, fmt.Errorf("vault: trust anchor %q (sha256 %s) matches no rootFingerprints entry", a.Subject,
				Fingerprint(a))
		}
	}
	return anchors, nil
}

// pinnedAnchors finds the certificates pinned by rootFingerprints among the mount's issuers and their chains.
func (b *Backend) pinnedAnchors(ctx context.Context) ([]*x509.Certificate, error) {
	pins := b.pins()
	found, err := b.issuerCerts(ctx)
	if err != nil {
		return nil, err
	}
	var anchors []*x509.Certificate
	for _, pin := range pins {
		var hit *x509.Certificate
		for _, c := range found {
			if fingerprintBytes(c) == pin {
				hit = c
			}
		}
		if hit == nil {
			var seen []string
			for _, c := range found {
				seen = append(seen, fmt.Sprintf("%s (%q)", Fingerprint(c), c.Subject.String()))
			}
			return nil, fmt.Errorf("vault: no certificate with sha256 %x among the issuers of mount %s (found %s): "+
				"import the root into the mount with the intermediate (intermediate/set-signed with the full chain) "+
				"or configure rootsFile",
				pin, b.cfg.Mount, strings.Join(seen, ", "))
		}
		if !isAnchor(hit, anchors) {
			anchors = append(anchors, hit)
		}
	}
	return anchors, nil
}

// issuerCerts returns every certificate of every issuer of the mount, with their chains, without duplicates.
func (b *Backend) issuerCerts(ctx context.Context) ([]*x509.Certificate, error) {
	cctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	list, err := b.client.Logical().ListWithContext(cctx, b.cfg.Mount+"/issuers")
	if err != nil {
		return nil, b.classify(cctx, "listing issuers", b.cfg.Mount+"/issuers", err)
	}
	var keys []any
	if list != nil {
		keys, _ = list.Data["keys"].([]any)
	}
	var out []*x509.Certificate
	for _, k := range keys {
		id, _ := k.(string)
		if !validName(id) {
			continue
		}
		path := b.cfg.Mount + "/issuer/" + id + "/json"
		sec, err := b.client.Logical().ReadWithContext(cctx, path)
		if err != nil {
			return nil, b.classify(cctx, "reading the issuer", path, err)
		}
		if sec == nil {
			continue
		}
		c, rest, err := parseIssued(sec.Data)
		if err != nil {
			return nil, fmt.Errorf("vault: issuer %s: %w", path, err)
		}
		for _, x := range append([]*x509.Certificate{c}, rest...) {
			if !isAnchor(x, out) {
				out = append(out, x)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("vault: mount %s has no issuers: configure its CA first", b.cfg.Mount)
	}
	return out, nil
}

func fingerprintBytes(c *x509.Certificate) [32]byte { return sha256.Sum256(c.Raw) }
