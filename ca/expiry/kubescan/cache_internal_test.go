package kubescan

import (
	"bytes"
	"testing"

	"github.com/meshca/meshca/ca/expiry/internal/certtest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The informers' transform leaves no private key, no non-PEM data and no annotation (kubectl's
// last-applied-configuration copy) in what the cache keeps, and keeps the certificates.
func TestStripKeysLeavesNoPrivateKey(t *testing.T) {
	p := certtest.NewPKI(t)
	key := certtest.KeyPEM(t, p.Inter.Key)
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cacerts", Annotations: map[string]string{
		"kubectl.kubernetes.io/last-applied-configuration": string(key)}},
		Data: map[string][]byte{"ca-key.pem": key, "ca-cert.pem": certtest.CertsPEM(p.Inter), "token": []byte("x")}}
	obj, err := stripKeys(s)
	if err != nil {
		t.Fatal(err)
	}
	got := obj.(*corev1.Secret)
	for k, v := range got.Data {
		if bytes.Contains(v, []byte("PRIVATE KEY")) {
			t.Errorf("%s still holds a private key", k)
		}
	}
	if _, ok := got.Data["token"]; ok || len(got.Annotations) > 0 {
		t.Errorf("non-PEM data or annotations kept: %v %v", got.Data, got.Annotations)
	}
	if !bytes.Equal(got.Data["ca-cert.pem"], certtest.CertsPEM(p.Inter)) {
		t.Error("the certificate was changed")
	}
}
