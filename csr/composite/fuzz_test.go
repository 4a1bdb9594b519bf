package composite_test

import (
	"bytes"
	"crypto"
	"errors"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/meshca/meshca/csr/composite"
)

// Every parser refuses with a sentinel error, never with a panic; what it accepts round-trips, and every
// signature it accepts also verifies with the independent crossCheck.
//
// The seeds are several KiB, and the fuzzer minimises every new interesting input for up to a minute by
// default, so run these with a short minimisation, e.g.
//
//	go test -run '^$' -fuzz '^FuzzVerify$' -fuzztime 1m -fuzzminimizetime 2s ./csr/composite/

func assertSentinel(t *testing.T, err error) {
	t.Helper()
	for _, s := range []error{composite.ErrMalformed, composite.ErrUnsupported, composite.ErrInvalidSignature,
		composite.ErrContextTooLong} {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("error without a sentinel: %v", err)
}

const fuzzTcID = "id-MLDSA65-ECDSA-P256-SHA512"

func fuzzVector(f *testing.F) (*vectorFile, map[string]vector) {
	vf := loadVectors(f)
	byID := map[string]vector{}
	for _, v := range vf.Tests {
		if len(v.PK) > 0 {
			byID[v.TcID] = v
		}
	}
	return vf, byID
}

func FuzzParsePKIXPublicKey(f *testing.F) {
	_, byID := fuzzVector(f)
	for _, v := range byID {
		if cert, ok := parseOuter(v.X5C); ok {
			f.Add(cert.spki)
		}
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		in := bytes.Clone(der)
		pub, err := composite.ParsePKIXPublicKey(der)
		if !bytes.Equal(in, der) {
			t.Fatal("the parser modified its input")
		}
		if err != nil {
			assertSentinel(t, err)
			return
		}
		again, err := composite.MarshalPKIXPublicKey(pub)
		if err != nil || !bytes.Equal(again, der) {
			t.Fatalf("accepted SubjectPublicKeyInfo does not re-encode to itself (err %v)", err)
		}
	})
}

func FuzzParsePKCS8PrivateKey(f *testing.F) {
	_, byID := fuzzVector(f)
	for _, v := range byID {
		f.Add(v.SKPKCS8)
	}
	v := byID[fuzzTcID]
	f.Add(oneAsymmetricKey(1, []int(composite.MLDSA65ECDSAP256SHA512().OID()), v.SK, v.PK))
	f.Fuzz(func(t *testing.T, der []byte) {
		in := bytes.Clone(der)
		key, err := composite.ParsePKCS8PrivateKey(der)
		if !bytes.Equal(in, der) {
			t.Fatal("the parser modified its input")
		}
		if err != nil {
			assertSentinel(t, err)
			return
		}
		again, err := composite.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		key2, err := composite.ParsePKCS8PrivateKey(again)
		if err != nil || !key2.(interface{ Equal(crypto.PrivateKey) bool }).Equal(key) {
			t.Fatalf("accepted key does not round-trip (err %v)", err)
		}
	})
}

func FuzzNewPrivateKey(f *testing.F) {
	_, byID := fuzzVector(f)
	f.Add(byID[fuzzTcID].SK)
	alg := composite.MLDSA65ECDSAP256SHA512()
	f.Fuzz(func(t *testing.T, raw []byte) {
		key, err := composite.NewPrivateKey(alg, raw)
		if err != nil {
			assertSentinel(t, err)
			return
		}
		if !bytes.Equal(key.Bytes(), raw) {
			t.Fatal("accepted private key does not re-encode to itself")
		}
	})
}

func FuzzVerify(f *testing.F) {
	vf, byID := fuzzVector(f)
	v := byID[fuzzTcID]
	f.Add(vf.M, []byte{}, v.S)
	f.Add(vf.M, vf.Ctx, v.SWithContext)
	pub, err := composite.NewPublicKey(composite.MLDSA65ECDSAP256SHA512(), v.PK)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, msg, ctx, sig []byte) {
		err := composite.Verify(pub, msg, sig, &composite.Options{Context: string(ctx)})
		if err != nil {
			assertSentinel(t, err)
			return
		}
		crossCheck(t, fuzzTcID, v.PK, msg, ctx, sig)
	})
}

func FuzzParseCertificateRequest(f *testing.F) {
	f.Add(newCSR(f, newKey(f, composite.MLDSA65ECDSAP256SHA512())))
	f.Add(newCSR(f, newKey(f, composite.MLDSA44ECDSAP256SHA256())))
	f.Fuzz(func(t *testing.T, der []byte) {
		req, err := composite.ParseCertificateRequest(der)
		if err != nil {
			assertSentinel(t, err)
			return
		}
		pub, ok := req.PublicKey.(*composite.PublicKey)
		if !ok || !bytes.Equal(req.Raw, der) {
			t.Fatalf("accepted request has key %T or another Raw", req.PublicKey)
		}
		crossCheck(t, "id-"+pub.Algorithm().String(), pub.Bytes(), req.RawTBSCertificateRequest, nil, req.Signature)
	})
}

func FuzzVerifyCertificateSignature(f *testing.F) {
	_, byID := fuzzVector(f)
	v := byID[fuzzTcID]
	f.Add(v.X5C)
	pub, err := composite.NewPublicKey(composite.MLDSA65ECDSAP256SHA512(), v.PK)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		in := bytes.Clone(der)
		err := composite.VerifyCertificateSignature(der, pub)
		if !bytes.Equal(in, der) {
			t.Fatal("the verifier modified its input")
		}
		if err != nil {
			assertSentinel(t, err)
			return
		}
		c, ok := parseOuter(der)
		if !ok {
			t.Fatal("an accepted certificate does not parse")
		}
		crossCheck(t, fuzzTcID, v.PK, c.tbs, nil, c.sig)
	})
}

type outer struct{ tbs, spki, sig []byte }

// parseOuter splits a certificate into its tbsCertificate, subjectPublicKeyInfo and signature, independently
// of the package.
func parseOuter(der []byte) (outer, bool) {
	in := cryptobyte.String(der)
	var seq, tbs, body, alg, spki, sig cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1Element(&tbs, cbasn1.SEQUENCE) ||
		!seq.ReadASN1(&alg, cbasn1.SEQUENCE) || !seq.ReadASN1(&sig, cbasn1.BIT_STRING) || len(sig) == 0 {
		return outer{}, false
	}
	body = tbs
	if !body.ReadASN1(&body, cbasn1.SEQUENCE) ||
		!body.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return outer{}, false
	}
	for range 5 { // serialNumber, signature, issuer, validity, subject
		var el cryptobyte.String
		var tag cbasn1.Tag
		if !body.ReadAnyASN1Element(&el, &tag) {
			return outer{}, false
		}
	}
	if !body.ReadASN1Element(&spki, cbasn1.SEQUENCE) {
		return outer{}, false
	}
	return outer{tbs: tbs, spki: spki, sig: sig[1:]}, true
}
