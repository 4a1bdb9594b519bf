package server

import (
	"fmt"
	"net"
	"runtime"
	"time"

	"google.golang.org/grpc/credentials"
)

// connectionTimeout is how long a new connection may wait for a handshake slot, and then how long its TLS
// handshake may take (grpc.ConnectionTimeout).
const connectionTimeout = 10 * time.Second

// handshakesPerCPU bounds the TLS handshakes running at once on the gRPC port, per CPU meshca may use.
// A handshake is CPU work (an ECDHE or X25519MLKEM768 exchange and a signature) plus one client round
// trip; a few per CPU keep the CPUs busy while clients answer.
const handshakesPerCPU = 8

// limitedHandshakes lets at most cap(slots) TLS handshakes run at once; the others wait up to wait for a
// slot, and a handshake that got one has wait to finish. In a restart storm, thousands of pods connect at
// once: unbounded, every handshake advances a little at a time, each holding its TLS and HTTP/2 state, many
// miss the deadline with their CPU spent for nothing, and memory grows with the connections. Bounded, the
// handshakes that run finish quickly and the waiting connections cost a goroutine and a socket.
type limitedHandshakes struct {
	credentials.TransportCredentials
	slots chan struct{}
	wait  time.Duration
}

// limitHandshakes wraps creds so that at most n handshakes run at once, each waiting at most wait for a slot.
func limitHandshakes(creds credentials.TransportCredentials, n int, wait time.Duration) *limitedHandshakes {
	return &limitedHandshakes{TransportCredentials: creds, slots: make(chan struct{}, n), wait: wait}
}

// defaultHandshakeLimit is handshakesPerCPU for every CPU of GOMAXPROCS.
func defaultHandshakeLimit() int { return handshakesPerCPU * runtime.GOMAXPROCS(0) }

// ServerHandshake waits for a slot, then runs the TLS handshake in it.
func (l *limitedHandshakes) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	select {
	case l.slots <- struct{}{}:
	default:
		t := time.NewTimer(l.wait)
		defer t.Stop()
		select {
		case l.slots <- struct{}{}:
		case <-t.C:
			return nil, nil, fmt.Errorf("server: no TLS handshake slot within %v (%d handshakes running)",
				l.wait, cap(l.slots))
		}
	}
	defer func() { <-l.slots }()
	// The handshake gets its whole deadline from now: the wait cost no CPU, and a handshake cut short by
	// time spent waiting would be CPU spent for nothing.
	if err := conn.SetDeadline(time.Now().Add(l.wait)); err != nil {
		return nil, nil, fmt.Errorf("server: TLS handshake deadline: %w", err)
	}
	return l.TransportCredentials.ServerHandshake(conn)
}

// Clone implements credentials.TransportCredentials; the clone shares the slots.
func (l *limitedHandshakes) Clone() credentials.TransportCredentials {
	return &limitedHandshakes{TransportCredentials: l.TransportCredentials.Clone(), slots: l.slots, wait: l.wait}
}
