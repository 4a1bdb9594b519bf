package main

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/server"
	"github.com/meshca/meshca/internal/durtext"
)

// MinLifetime is the shortest certificate lifetime a configuration may set without allowShortTTLs (ca owns
// every lifetime rule).
const MinLifetime = ca.MinLifetime

// checkUsable reports configurations that decode and validate but cannot work: lifetimes below MinLifetime,
// listen addresses that cannot be bound, a serving certificate no agent can verify, no way to authenticate a
// first request. serve and `config validate` run it after Validate.
func (c *Config) checkUsable() error {
	var errs []error
	if !c.AllowShortTTLs {
		for _, l := range []struct {
			key string
			d   time.Duration
		}{{"issuance.defaultTTL", c.Issuance.DefaultTTL}, {"issuance.minTTL", c.Issuance.MinTTL},
			{"issuance.maxTTL", c.Issuance.MaxTTL}, {"server.servingTTL", c.Server.ServingTTL}} {
			if l.d != 0 && l.d < MinLifetime {
				errs = append(errs, fmt.Errorf("%s: %s is below the %s floor (set allowShortTTLs: true for tests only)",
					l.key, l.d, durtext.Short(MinLifetime)))
			}
		}
	}
	errs = append(errs, checkAddrs(c.Server)...)
	if len(c.Server.DNSNames) == 0 && len(c.Server.IPAddresses) == 0 && c.Server.TLSCertFile == "" {
		errs = append(errs, errors.New("server.dnsNames: empty (and no ipAddresses or tlsCertFile): agents check "+
			"the host of CA_ADDR against meshca's certificate; list e.g. meshca.istio-system.svc"))
	}
	if len(c.Authn.TokenIssuers) == 0 && (c.Kubernetes == nil || c.Kubernetes.TokenReview == nil) {
		errs = append(errs, errors.New("authn.issuers: empty and kubernetes.tokenReview not set: no agent can "+
			"authenticate its first request; add the cluster's service-account issuer"))
	}
	if len(c.Authn.TokenIssuers) > 0 && c.Kubernetes != nil && c.Kubernetes.TokenReview != nil &&
		c.Kubernetes.TokenReview.WithIssuers == "" {
		errs = append(errs, errors.New("kubernetes.tokenReview.withIssuers: required with authn.issuers: "+
			"otherIssuers (the issuers' tokens are verified locally only) or confirm (also by a TokenReview)"))
	}
	return errors.Join(errs...)
}

// checkAddrs checks the listen addresses as net.Listen would read them, before anything binds.
func checkAddrs(s server.Config) []error {
	var errs []error
	for _, a := range []struct{ key, addr string }{{"server.grpcAddr", s.GRPCAddr}, {"server.httpAddr", s.HTTPAddr}} {
		if a.addr == "" {
			continue // the default
		}
		host, port, err := net.SplitHostPort(a.addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not host:port (e.g. :15012 or 127.0.0.1:15012)",
				a.key, bounded(a.addr)))
			continue
		}
		if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			errs = append(errs, fmt.Errorf("%s: port %q is not a number from 0 to 65535", a.key, bounded(port)))
		}
		if host != "" && net.ParseIP(host) == nil && host != "localhost" {
			errs = append(errs, fmt.Errorf("%s: host %q is not an IP address or localhost", a.key, bounded(host)))
		}
	}
	if s.GRPCAddr != "" && s.GRPCAddr == s.HTTPAddr && !strings.HasSuffix(s.GRPCAddr, ":0") {
		errs = append(errs, fmt.Errorf("server.httpAddr: %s is also server.grpcAddr", s.HTTPAddr))
	}
	return errs
}

// renamed is an error whose message names the config key the user wrote instead of a package's name.
type renamed struct {
	msg string
	err error
}

func (r renamed) Error() string { return r.msg }
func (r renamed) Unwrap() error { return r.err }

// inSection rewrites the messages of err (one or joined, at any depth) from "pkg: key: ..." to
// "section.key: ...".
func inSection(err error, pkg, section string) error {
	if err == nil {
		return nil
	}
	list := joined(err)
	out := make([]error, 0, len(list))
	for _, e := range list {
		msg, ok := strings.CutPrefix(e.Error(), pkg+": ")
		if !ok {
			out = append(out, e)
			continue
		}
		if key, rest, found := strings.Cut(msg, ": "); found && !strings.Contains(key, " ") {
			msg = section + "." + key + ": " + rest
		} else {
			msg = section + ": " + msg
		}
		out = append(out, renamed{msg: msg, err: e})
	}
	return errors.Join(out...)
}

// joined returns the errors err joins (errors.Join), nested joins flattened, or err alone.
func joined(err error) []error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var list []error
	for _, e := range j.Unwrap() {
		list = append(list, joined(e)...)
	}
	return list
}
