package main

import (
	"net"
	"net/netip"
)

// devDistributionPoints gives the leaves of serve --dev's file backends a CRL distribution point: /crl on the
// HTTP port, which serves the issuing CA's DER CRL (RFC 5280 §4.2.1.13: an http URL names one DER CRL, so not
// /crl.pem). It is left out when the port is chosen by the kernel (":0"), as no URL would reach it.
func devDistributionPoints(cfg *Config) {
	host, port, err := net.SplitHostPort(cfg.Server.HTTPAddr)
	if err != nil || port == "0" || port == "" {
		return
	}
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	url := "http://" + net.JoinHostPort(host, port) + "/crl"
	for i := range cfg.Backends {
		if fc := cfg.Backends[i].File; fc != nil && len(fc.CRLDistributionPoints) == 0 {
			fc.CRLDistributionPoints = []string{url}
		}
	}
}
