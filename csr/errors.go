package csr

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalidCSR means the request is not a well-formed, correctly self-signed PKCS #10 CSR in PEM.
	ErrInvalidCSR = errors.New("invalid CSR")
	// ErrUnsupportedRequest means a well-formed CSR asks for something meshca never puts in a workload
	// certificate. It wraps ErrInvalidCSR.
	ErrUnsupportedRequest = fmt.Errorf("%w: the CSR asks for something meshca does not issue", ErrInvalidCSR)
	// ErrKeyPolicy means the CSR's public key is of a type or size meshca does not certify.
	ErrKeyPolicy = errors.New("CSR key not allowed")
	// ErrInvalidID means a string or URI is not a Kubernetes-shaped SPIFFE ID.
	ErrInvalidID = errors.New("invalid SPIFFE ID")
)
