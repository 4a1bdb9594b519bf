package expiry

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"slices"
	"sort"
)

// Set is what one source holds — a directory, a file, a Secret or ConfigMap, a URL — with the results of the
// checks that need the whole set (chain, key, CRL signature). Its Source has a Key only when the source is a
// single file.
type Set struct {
	Source   Source          `json:"source"`
	Certs    []Cert          `json:"certificates"`
	CRLs     []CRL           `json:"crls"`
	Problems []SourceProblem `json:"problems,omitempty"`
}

// layout names the keys of a known layout: the certificate the set is for, its key, the chain from it and the
// roots it must verify to.
type layout struct{ leaf, key, chain, roots string }

// layouts are checked in order; the first whose leaf key is present applies.
var layouts = []layout{
	// Istio's cacerts (file backend, istio-system/cacerts).
	{leaf: "ca-cert.pem", key: "ca-key.pem", chain: "cert-chain.pem", roots: "root-cert.pem"},
	// istio-agent's OUTPUT_CERTS directory and istio.io/key-and-cert Secrets.
	{leaf: "cert-chain.pem", key: "key.pem", chain: "cert-chain.pem", roots: "root-cert.pem"},
	// kubernetes.io/tls Secrets.
	{leaf: "tls.crt", key: "tls.key", chain: "tls.crt", roots: "ca.crt"},
}

// ParseSet reads the PEM documents of one source, keyed by file name or data key, and checks them as a set:
//   - in a known layout (Istio's cacerts, istio-agent's output certificates, kubernetes.io/tls), the
//     certificate must chain by signatures to one of the set's roots, whatever the time (expiry is reported
//     separately), and the private key must be the certificate's;
//   - a CRL must be signed by the CA of the set it names as issuer, when the set holds that CA.
//
// Certificates and CRLs are sorted by key, then in file order. Private keys are parsed only to compare their
// public halves and are not kept.
func ParseSet(src Source, files map[string][]byte) *Set {
	s := &Set{Source: src}
	keys := make([]string, 0, len(files))
	for k := range files {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	all := map[string]parsed{}
	var cas []*x509.Certificate
	for _, k := range keys {
		p, probs := parsePEM(src.withKey(k), files[k])
		s.Problems = append(s.Problems, probs...)
		all[k] = p
		for _, c := range p.certs {
			if c.BasicConstraintsValid && c.IsCA {
				cas = append(cas, c)
			}
		}
	}
	leafProblems := checkLayout(all)
	for _, k := range keys {
		for i, c := range all[k].certs {
			cert := newCert(src.withKey(k), c)
			if i == 0 && leafProblems.key == k {
				cert.Problems = leafProblems.problems
			}
			s.Certs = append(s.Certs, cert)
		}
		for _, rl := range all[k].crls {
			crl := newCRL(src.withKey(k), rl)
			if p := checkCRL(rl, cas); p != nil {
				crl.Problems = append(crl.Problems, *p)
			}
			s.CRLs = append(s.CRLs, crl)
		}
	}
	return s
}

// leafCheck is the outcome of checkLayout: the problems of the first certificate of key.
type leafCheck struct {
	key      string
	problems []Problem
}

// checkLayout runs the chain and key checks of the first layout that applies to the set.
func checkLayout(all map[string]parsed) leafCheck {
	for _, l := range layouts {
		leafs := all[l.leaf].certs
		if len(leafs) == 0 {
			continue
		}
		leaf := leafs[0]
		out := leafCheck{key: l.leaf}
		roots := all[l.roots].certs
		if len(roots) == 0 { // no roots file: a chain that ends in a self-signed certificate names its own root
			if last := all[l.chain].certs; len(last) > 0 && selfSigned(last[len(last)-1]) {
				roots = last[len(last)-1:]
			}
		}
		if len(roots) > 0 {
			var pool []*x509.Certificate
			pool = append(pool, all[l.chain].certs...)
			pool = append(pool, leafs[1:]...)
			if err := chainsTo(leaf, pool, roots); err != "" {
				out.problems = append(out.problems, Problem{Kind: ProblemChain, Detail: err})
			}
		}
		if keys := all[l.key].keys; len(keys) > 0 && !publicKeyEqual(keys[0], leaf.PublicKey) {
			out.problems = append(out.problems, Problem{Kind: ProblemKeyMismatch,
				Detail: l.key + " is not the key of " + l.leaf})
		}
		return out
	}
	return leafCheck{}
}

// chainsTo walks from leaf through pool to one of roots by issuer name and signature, ignoring validity
// periods. It returns "" on success or a short reason.
func chainsTo(leaf *x509.Certificate, pool, roots []*x509.Certificate) string {
	cur := leaf
	for hop := 0; hop < maxChainHops; hop++ {
		for _, r := range roots {
			if r.Equal(cur) || bytes.Equal(cur.RawIssuer, r.RawSubject) && cur.CheckSignatureFrom(r) == nil {
				return ""
			}
		}
		next := slices.IndexFunc(pool, func(c *x509.Certificate) bool {
			return !c.Equal(cur) && bytes.Equal(cur.RawIssuer, c.RawSubject) && cur.CheckSignatureFrom(c) == nil
		})
		if next < 0 {
			return bound("no issuer of \""+cur.Subject.String()+"\" among the chain and roots", maxDetail)
		}
		cur = pool[next]
	}
	return "chain longer than 10 certificates"
}

func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

// checkCRL verifies rl's signature against the CA among cas that it names as issuer; it returns nil when it
// verifies or when no such CA is known.
func checkCRL(rl *x509.RevocationList, cas []*x509.Certificate) *Problem {
	named := false
	for _, ca := range cas {
		if !bytes.Equal(ca.RawSubject, rl.RawIssuer) {
			continue
		}
		named = true
		if rl.CheckSignatureFrom(ca) == nil {
			return nil
		}
	}
	if !named {
		return nil
	}
	return &Problem{Kind: ProblemCRLSignature, Detail: bound("not signed by \""+rl.Issuer.String()+"\" of this set",
		maxDetail)}
}

func publicKeyEqual(a crypto.PublicKey, b any) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}
