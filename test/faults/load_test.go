package faults_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"

	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/ca/catest"
)

// result is one request of a load: when it was sent, how long it took, and its code.
type result struct {
	at      time.Time
	took    time.Duration
	code    codes.Code
	message string
}

// load sends CreateCertificate requests for id from workers goroutines, back to back, until stop is closed,
// and returns every result in the order they ended.
type load struct {
	mu      sync.Mutex
	results []result
	wg      sync.WaitGroup
	stop    chan struct{}
}

func startLoad(t *testing.T, conn *grpc.ClientConn, token, id string, workers int) *load {
	t.Helper()
	l := &load{stop: make(chan struct{})}
	csr, _ := catest.WorkloadCSR(t, id)
	client := pb.NewIstioCertificateServiceClient(conn)
	for range workers {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token,
					"clusterid", authn.DefaultClusterID)
				start := time.Now()
				_, err := client.CreateCertificate(ctx, &pb.IstioCertificateRequest{Csr: string(csr)})
				cancel()
				r := result{at: start, took: time.Since(start), code: status.Code(err)}
				if err != nil {
					r.message = status.Convert(err).Message()
				}
				l.mu.Lock()
				l.results = append(l.results, r)
				l.mu.Unlock()
				if err != nil {
					time.Sleep(20 * time.Millisecond) // as a retrying agent would, a little
				}
			}
		})
	}
	t.Cleanup(l.end)
	return l
}

// end stops the load and waits for the requests in flight.
func (l *load) end() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// between returns the results of requests sent in [from, to).
func (l *load) between(from, to time.Time) []result {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []result
	for _, r := range l.results {
		if !r.at.Before(from) && r.at.Before(to) {
			out = append(out, r)
		}
	}
	return out
}
