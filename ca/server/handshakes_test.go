package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"
)

// selfSignedTLS is a server TLS configuration with a fresh self-signed P-256 certificate, and a client one
// that trusts it.
func selfSignedTLS(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"meshca.test"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool, ServerName: "meshca.test", NextProtos: []string{"h2"}}
}

// handshake runs a server handshake through l and a client handshake against it over a pipe, and returns
// the server's result on the channel when it ends.
func handshake(t *testing.T, l *limitedHandshakes, client *tls.Config) <-chan error {
	t.Helper()
	sc, cc := net.Pipe()
	t.Cleanup(func() { sc.Close(); cc.Close() })
	_ = sc.SetDeadline(time.Now().Add(time.Second)) // as gRPC does before ServerHandshake
	go func() { _ = tls.Client(cc, client).HandshakeContext(context.Background()) }()
	done := make(chan error, 1)
	go func() {
		_, _, err := l.ServerHandshake(sc)
		done <- err
	}()
	return done
}

// TestHandshakesWaitForASlot: with every slot taken, a new connection's TLS handshake does not start; it
// runs as soon as a slot is free, with its own deadline, and a connection that finds no slot within the wait
// is closed without any handshake work.
func TestHandshakesWaitForASlot(t *testing.T) {
	serverTLS, clientTLS := selfSignedTLS(t)
	tests := []struct {
		name    string
		release time.Duration // when the held slot is freed; 0 never
		wantErr bool
	}{
		{"a handshake waits for the slot and completes once it is free, past the deadline set before",
			1200 * time.Millisecond, false},
		{"a connection that gets no slot within the wait is refused", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := limitHandshakes(credentials.NewTLS(serverTLS), 1, 1500*time.Millisecond)
			l.slots <- struct{}{} // a handshake in progress holds the only slot
			done := handshake(t, l, clientTLS)
			select {
			case err := <-done:
				t.Fatalf("handshake ended (%v) while every slot was taken", err)
			case <-time.After(300 * time.Millisecond):
			}
			if tt.release > 0 {
				time.Sleep(tt.release - 300*time.Millisecond) // past the deadline set before the wait
				<-l.slots
			}
			select {
			case err := <-done:
				if (err != nil) != tt.wantErr {
					t.Fatalf("ServerHandshake: %v, want error %v", err, tt.wantErr)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("handshake did not end")
			}
			if len(l.slots) != 1 && tt.release == 0 || len(l.slots) != 0 && tt.release > 0 {
				t.Fatalf("%d slots taken after the handshake, want only the held one", len(l.slots))
			}
		})
	}
}

// TestHandshakeLimitIsShared: clones (gRPC clones credentials) share one set of slots.
func TestHandshakeLimitIsShared(t *testing.T) {
	serverTLS, _ := selfSignedTLS(t)
	l := limitHandshakes(credentials.NewTLS(serverTLS), 3, time.Second)
	c, ok := l.Clone().(*limitedHandshakes)
	if !ok || c.slots != l.slots || cap(c.slots) != 3 {
		t.Fatalf("clone %+v does not share the slots", c)
	}
}
