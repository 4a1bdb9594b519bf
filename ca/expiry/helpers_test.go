package expiry_test

import (
	"flag"

	"github.com/meshca/meshca/ca/expiry/internal/certtest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ from the current output")

// Short names for the certificate helpers.
var (
	t0         = certtest.T0
	makeCert   = certtest.Make
	certsPEM   = certtest.CertsPEM
	keyPEM     = certtest.KeyPEM
	crlPEM     = certtest.CRLPEM
	newPKI     = certtest.NewPKI
	gather     = certtest.Gather
	writeFiles = certtest.WriteFiles
)

const day = certtest.Day

type (
	certSpec = certtest.Spec
	testPKI  = certtest.PKI
)
