// Package crltest builds real PKIs for the tests of crl and its subpackages: a root, an intermediate and
// leaves on ECDSA P-256, written as PEM files that openssl can read.
package crltest
