package crl

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// assemble checks coverage, picks one CRL per CA and publishes the result.
func (p *Publisher) assemble(cas []*x509.Certificate, own, others []*CRL, now time.Time) Report {
	cands := p.candidates(own, others)
	lists := make([]*x509.RevocationList, len(cands))
	for i, c := range cands {
		lists[i] = c.List
	}
	cov, err := Check(cas, lists, now)
	rep := Report{Time: now, Coverage: cov, Complete: true, Err: err}
	seen := map[CAID]bool{} // CAs with CRL gauges this round
	usable := p.choose(cov, cands, &rep, seen)
	usable = p.keepDeparted(usable, cas, seen, now)
	for id := range p.gauged {
		if !seen[id] {
			p.m.deleteCRL(id)
		}
	}
	p.gauged = seen
	p.publish(p.next(usable, rep))
	return rep
}

// candidates are meshca's own CRLs and those of others, but for another CRL of a CA meshca signs for:
// meshca's own is published instead, and that is said once.
func (p *Publisher) candidates(own, others []*CRL) []*CRL {
	cands := own
	for _, c := range others {
		if i := indexMatching(own, c.List); i >= 0 {
			if key := "shadowed/" + c.Origin + "/" + string(own[i].ID); p.logged[key] == "" {
				p.logged[key] = "logged"
				p.cfg.Logger.Warn("a CRL of a CA that meshca signs for is ignored: meshca's own CRL of it is published",
					"origin", c.Origin, "ca", own[i].CA.Subject.String())
			}
			continue
		}
		cands = append(cands, c)
	}
	return cands
}

// choose takes the CRL that coverage found for each CA, sets its gauges and marks it in seen, and returns
// those that are usable; a CA without one, or with a CRL in error, makes rep incomplete.
func (p *Publisher) choose(cov []Coverage, cands []*CRL, rep *Report, seen map[CAID]bool) []*CRL {
	var usable []*CRL
	for _, c := range cov {
		if c.Index < 0 {
			rep.Complete = false
			p.m.deleteCRL(c.ID)
			continue
		}
		chosen := *cands[c.Index]
		chosen.CA, chosen.ID = c.CA, c.ID
		p.m.setCRL(&chosen)
		p.m.info.DeletePartialMatch(prometheus.Labels{"ca": string(c.ID)})
		p.m.info.WithLabelValues(string(c.ID), c.CA.Subject.String(), originKind(chosen.Origin)).Set(1)
		seen[c.ID] = true
		if c.Err != nil && !errors.Is(c.Err, ErrCARevoked) {
			rep.Complete = false
			continue
		}
		usable = append(usable, &chosen)
	}
	return usable
}

// keepDeparted adds the last CRL of each CA that left the chains, while it is valid.
func (p *Publisher) keepDeparted(usable []*CRL, cas []*x509.Certificate, seen map[CAID]bool,
	now time.Time) []*CRL {
	for id, c := range p.last {
		if !containsID(usable, id) && !containsCA(cas, id) && inTime(c.List, now) == nil {
			usable = append(usable, c)
			p.m.setCRL(c)
			seen[id] = true
		}
	}
	return usable
}

// next is what to publish: the usable CRLs and, when the set is complete or the
// publisher fails closed, their PEM bundle. It remembers usable as the last CRLs.
func (p *Publisher) next(usable []*CRL, rep Report) *published {
	next := &published{byID: map[CAID]*CRL{}, report: rep}
	p.last = map[CAID]*CRL{}
	for _, c := range usable {
		next.byID[c.ID], p.last[c.ID] = c, c
		next.crls = append(next.crls, c)
	}
	if rep.Complete || p.cfg.FailClosed {
		ders := make([][]byte, len(next.crls))
		for i, c := range next.crls {
			ders[i] = c.DER
		}
		next.pem = EncodeBundle(ders...)
	}
	return next
}

// publish makes next current, reports its coverage and tells the watchers when ca-crl.pem changed.
func (p *Publisher) publish(next *published) {
	rep := next.report
	p.note("coverage", TargetCoverage, coverageErr(rep, p.cfg.FailClosed),
		"not every CA of the served chains has a valid CRL")
	if rep.Complete {
		p.m.complete.Set(1)
	} else {
		p.m.complete.Set(0)
	}
	prev := p.cur.Swap(next)
	if prev == nil || !bytes.Equal(prev.pem, next.pem) {
		p.cfg.Logger.Info("ca-crl.pem changed", "crls", len(next.crls), "bytes", len(next.pem),
			"complete", rep.Complete)
		p.changed.notify()
	}
}

func coverageErr(rep Report, failClosed bool) error {
	if rep.Complete {
		return rep.Err // a CA revoked by its issuer: published, but worth an error
	}
	if failClosed {
		return fmt.Errorf("publishing the incomplete set (failClosed): %w", rep.Err)
	}
	return fmt.Errorf("publishing an empty ca-crl.pem (no revocation checking) until it is complete: %w", rep.Err)
}

func indexMatching(own []*CRL, l *x509.RevocationList) int {
	for i, c := range own {
		if Matches(l, c.CA) {
			return i
		}
	}
	return -1
}

func containsID(cs []*CRL, id CAID) bool {
	for _, c := range cs {
		if c.ID == id {
			return true
		}
	}
	return false
}

func containsCA(cas []*x509.Certificate, id CAID) bool {
	for _, c := range cas {
		if IDOf(c) == id {
			return true
		}
	}
	return false
}

func originKind(origin string) string {
	for i, c := range origin {
		if c == ' ' {
			return origin[:i]
		}
	}
	return origin
}
