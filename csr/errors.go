package csr

import "errors"

var (
	// ErrInvalidCSR means the request is not a well-formed, correctly self-signed PKCS #10 CSR in PEM.
	ErrInvalidCSR = errors.New("invalid CSR")
	// ErrKeyPolicy means the CSR's public key is of a type or size meshca does not certify.
	ErrKeyPolicy = errors.New("CSR key not allowed")
	// ErrInvalidID means a string or URI is not a Kubernetes-shaped SPIFFE ID.
	ErrInvalidID = errors.New("invalid SPIFFE ID")
)
