package vault_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshca/meshca/backends"
	"github.com/meshca/meshca/backends/vault"
	"github.com/meshca/meshca/backends/vault/vaulttest"
	"github.com/meshca/meshca/ca/catest"
)

// signWorks fails the test unless b issues a certificate now.
func signWorks(t *testing.T, b *vault.Backend, what string) {
	t.Helper()
	if _, err := b.Sign(ctxTimeout(t, 10*time.Second), request(t, "ecdsa", testID, time.Hour)); err != nil {
		t.Fatalf("Sign %s: %v", what, err)
	}
}

// A renewable token with a 3 s TTL stays usable well past 3 s: the background goroutine renews it.
func TestAuthTokenRenewal(t *testing.T) {
	s := devVault(t)
	p := s.PKI(t, vaulttest.PKIOptions{})
	cfg := config(t, s, p)
	var logs logBuffer
	cfg.Logger = testLogger(t, &logs)
	cfg.Auth.Token = vault.Secret(s.CreateToken(t, 3*time.Second, true, p.Policy))
	b := newBackend(t, cfg)
	signWorks(t, b, "with a fresh token")
	time.Sleep(5 * time.Second)
	signWorks(t, b, "after the token's first TTL")
	if !strings.Contains(logs.String(), "vault token renewed") {
		t.Fatalf("no renewal logged:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), string(cfg.Auth.Token)) {
		t.Fatal("the token appears in the log")
	}
}

// A token file is re-read when Vault denies the current token, so a rotated file takes effect at once.
func TestAuthTokenFileRotation(t *testing.T) {
	s := devVault(t)
	p := s.PKI(t, vaulttest.PKIOptions{})
	cfg := config(t, s, p)
	old := string(cfg.Auth.Token)
	file := filepath.Join(t.TempDir(), "token")
	writeFile(t, file, old+"\n")
	cfg.Auth.Token, cfg.Auth.TokenFile = "", file
	var logs logBuffer
	cfg.Logger = testLogger(t, &logs)
	b := newBackend(t, cfg)
	signWorks(t, b, "with the first token")

	writeFile(t, file, s.CreateToken(t, time.Hour, true, p.Policy))
	s.Write(t, "auth/token/revoke", map[string]any{"token": old})
	signWorks(t, b, "after the file was rotated and the old token revoked")
	if !strings.Contains(logs.String(), "vault token re-read from file") {
		t.Fatalf("the token file was not re-read:\n%s", logs.String())
	}
}

// AppRole: login against the real server, renewal, re-login once the token's max TTL is reached, and re-login
// when Vault revokes the token.
func TestAuthAppRole(t *testing.T) {
	s := devVault(t)
	p := s.PKI(t, vaulttest.PKIOptions{})
	mount, roleID, secretID := s.AppRole(t, 3*time.Second, p.Policy)
	cfg := config(t, s, p)
	var logs logBuffer
	cfg.Logger = testLogger(t, &logs)
	cfg.Auth = vault.AuthConfig{Method: vault.AuthAppRole, MountPath: mount, RoleID: roleID,
		SecretID: vault.Secret(secretID)}
	b := newBackend(t, cfg)
	signWorks(t, b, "after AppRole login")

	time.Sleep(10 * time.Second) // past token_max_ttl (9 s)
	signWorks(t, b, "after the first token's max TTL")
	if n := strings.Count(logs.String(), `"msg":"vault login succeeded"`); n < 2 {
		t.Fatalf("%d logins logged, want a re-login before the max TTL:\n%s", n, logs.String())
	}

	// Revoke every token issued by this AppRole mount: the next Sign gets 403, logs in again and succeeds.
	s.Write(t, "sys/leases/revoke-prefix/auth/"+mount+"/login", nil)
	signWorks(t, b, "after Vault revoked meshca's token")
	if !strings.Contains(logs.String(), "vault denied meshca's token; logging in again") {
		t.Fatalf("no re-login after the revocation was logged:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), secretID) {
		t.Fatal("the secret ID appears in the log")
	}
}

func TestAuthAppRoleBadSecretID(t *testing.T) {
	s := devVault(t)
	p := s.PKI(t, vaulttest.PKIOptions{})
	mount, roleID, _ := s.AppRole(t, time.Minute, p.Policy)
	cfg := config(t, s, p)
	cfg.Auth = vault.AuthConfig{Method: vault.AuthAppRole, MountPath: mount, RoleID: roleID, SecretID: "not-the-secret"}
	_, err := vault.New(t.Context(), cfg)
	if !errors.Is(err, backends.ErrRefused) || strings.Contains(err.Error(), "not-the-secret") {
		t.Fatalf("New with a wrong secret ID: %v, want ErrRefused without the secret", err)
	}
}

// JWT auth shares the login code with Kubernetes auth (role + token file, re-read at every login). The file is
// re-read: after a bad token is written, the forced re-login fails; after a good one, it succeeds.
func TestAuthJWT(t *testing.T) {
	s := devVault(t)
	p := s.PKI(t, vaulttest.PKIOptions{})
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(key.Public())
	const iss, sub = "https://kubernetes.default.svc.cluster.local", "system:serviceaccount:istio-system:meshca"
	mount := s.JWTAuth(t, string(pemBlock("PUBLIC KEY", pubDER)), iss, sub, time.Minute, p.Policy)
	file := filepath.Join(t.TempDir(), "token")
	writeFile(t, file, signJWT(t, key, iss, sub, "vault"))
	cfg := config(t, s, p)
	cfg.Auth = vault.AuthConfig{Method: vault.AuthJWT, MountPath: mount, Role: "meshca", JWTFile: file}
	b := newBackend(t, cfg)
	signWorks(t, b, "after JWT login")

	writeFile(t, file, signJWT(t, key, iss, sub, "someone-else"))
	s.Write(t, "sys/leases/revoke-prefix/auth/"+mount+"/login", nil)
	_, err = b.Sign(ctxTimeout(t, 10*time.Second), request(t, "ecdsa", testID, time.Hour))
	if !errors.Is(err, backends.ErrUnavailable) || errors.Is(err, backends.ErrRefused) {
		t.Fatalf("Sign with a revoked token and a wrong-audience JWT in the file: %v, want ErrUnavailable only", err)
	}
	writeFile(t, file, signJWT(t, key, iss, sub, "vault"))
	signWorks(t, b, "after a good JWT was written back")
}

// Kubernetes auth against a real kube-apiserver: Vault reviews meshca's projected service-account token with
// the TokenReview API.
func TestAuthKubernetes(t *testing.T) {
	s := devVault(t)
	k := catest.SharedKube(t)
	p := s.PKI(t, vaulttest.PKIOptions{})
	ns := k.Namespace(t)
	ctx := t.Context()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "meshca"}}
	if _, err := k.Client.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(k.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	mount := vaulttest.Unique("kubernetes")
	s.Write(t, "sys/auth/"+mount, map[string]any{"type": "kubernetes"})
	s.Write(t, "auth/"+mount+"/config", map[string]any{"kubernetes_host": k.URL, "kubernetes_ca_cert": string(caPEM),
		"token_reviewer_jwt": k.Config.BearerToken, "disable_local_ca_jwt": true})
	s.Write(t, "auth/"+mount+"/role/meshca", map[string]any{"bound_service_account_names": "meshca",
		"bound_service_account_namespaces": ns, "audience": "vault", "token_policies": p.Policy, "token_ttl": "60s"})

	file := filepath.Join(t.TempDir(), "token")
	projected := func(sa string) string { // what the kubelet writes into a projected volume
		exp := int64(600)
		tr, err := k.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authv1.TokenRequest{
			Spec: authv1.TokenRequestSpec{Audiences: []string{"vault"}, ExpirationSeconds: &exp}},
			metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	writeFile(t, file, projected("meshca"))
	cfg := config(t, s, p)
	cfg.Auth = vault.AuthConfig{Method: vault.AuthKubernetes, MountPath: mount, Role: "meshca", JWTFile: file}
	b := newBackend(t, cfg)
	signWorks(t, b, "after Kubernetes login")

	// The kubelet rotates the file; the next login reads the new token.
	writeFile(t, file, projected("meshca"))
	s.Write(t, "sys/leases/revoke-prefix/auth/"+mount+"/login", nil)
	signWorks(t, b, "after a re-login with the rotated token")

	// A valid token of another service account, which the Vault role does not bind: the next login is refused.
	intruder := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "intruder"}}
	if _, err := k.Client.CoreV1().ServiceAccounts(ns).Create(ctx, intruder, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	writeFile(t, file, projected("intruder"))
	s.Write(t, "sys/leases/revoke-prefix/auth/"+mount+"/login", nil)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := b.Sign(cctx, request(t, "ecdsa", testID, time.Hour)); !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("Sign with another service account's token in the file: %v, want ErrUnavailable", err)
	}
}

func writeFile(t testing.TB, name, data string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// signJWT returns an ES256 JWT like a projected service-account token.
func signJWT(t testing.TB, key *ecdsa.PrivateKey, iss, sub, aud string) string {
	t.Helper()
	now := time.Now()
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signing := enc(map[string]string{"alg": "ES256", "typ": "JWT"}) + "." + enc(map[string]any{
		"iss": iss, "sub": sub, "aud": []string{aud}, "iat": now.Unix(), "nbf": now.Unix(),
		"exp": now.Add(10 * time.Minute).Unix(),
	})
	h := sha256.Sum256([]byte(signing))
	r, sv, err := ecdsa.Sign(rand.Reader, key, h[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	sv.FillBytes(sig[32:])
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// A non-renewable token is used until it expires, with a warning; the background goroutine must then idle, not
// spin, and Sign reports the expiry as ErrUnavailable.
func TestAuthNonRenewableToken(t *testing.T) {
	s := devVault(t)
	p := s.PKI(t, vaulttest.PKIOptions{})
	cfg := config(t, s, p)
	var logs logBuffer
	cfg.Logger = testLogger(t, &logs)
	cfg.Auth.Token = vault.Secret(s.CreateToken(t, 2*time.Second, false, p.Policy))
	b := newBackend(t, cfg)
	signWorks(t, b, "with a fresh non-renewable token")
	if !strings.Contains(logs.String(), "vault token is not renewable and will expire") {
		t.Fatalf("no expiry warning logged:\n%s", logs.String())
	}
	time.Sleep(2500 * time.Millisecond)
	before := cpuTime(t)
	time.Sleep(time.Second)
	if used := cpuTime(t) - before; used > 300*time.Millisecond {
		t.Fatalf("the test process used %s of CPU in 1s while idle: the token goroutine spins", used)
	}
	_, err := b.Sign(ctxTimeout(t, 10*time.Second), request(t, "ecdsa", testID, time.Hour))
	if !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("Sign with an expired token: %v, want ErrUnavailable", err)
	}
}

func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// A policy that does not allow signing is not fixed by logging in again: one login in total, and the error
// says the token is valid but its policies are not.
func TestAuthPolicyDenialDoesNotReLogin(t *testing.T) {
	s := devVault(t)
	p := s.PKI(t, vaulttest.PKIOptions{})
	mount, roleID, secretID := s.AppRole(t, time.Hour, "default")
	cfg := config(t, s, p)
	var logs logBuffer
	cfg.Logger = testLogger(t, &logs)
	cfg.Auth = vault.AuthConfig{Method: vault.AuthAppRole, MountPath: mount, RoleID: roleID,
		SecretID: vault.Secret(secretID)}
	b := newBackend(t, cfg)
	for range 3 {
		_, err := b.Sign(ctxTimeout(t, 10*time.Second), request(t, "ecdsa", testID, time.Hour))
		if !errors.Is(err, backends.ErrUnavailable) || !strings.Contains(err.Error(), "its policies do not allow") {
			t.Fatalf("Sign without the signing policy: %v, want ErrUnavailable naming the policy", err)
		}
	}
	if n := strings.Count(logs.String(), `"msg":"vault login succeeded"`); n != 1 {
		t.Fatalf("%d logins, want 1: a policy denial must not trigger logins", n)
	}
}
