package loadtest

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	pb "istio.io/api/security/v1alpha1"
)

// storm sends one request per identity, each on a new TLS connection opened for it and closed after it, as
// many restarting pods would: all at once, at most Concurrency in flight, the others waiting for a slot (a
// restarting pod does not give up; it only cannot start before the client machine lets it). It returns the
// indexes sent, the time until the last response and whether ctx ended the run early.
func (r *runner) storm(ctx context.Context, n int) (sent []int, elapsed time.Duration, interrupted bool) {
	base := context.WithoutCancel(ctx)
	slots := make(chan struct{}, r.cfg.Concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	if r.cfg.Progress != nil {
		stop, reported := make(chan struct{}), make(chan struct{})
		go func() { r.live.report(r.cfg.Progress, start, stop); close(reported) }()
		defer func() { close(stop); <-reported }()
	}
	for i := range n {
		select {
		case <-ctx.Done():
			interrupted = true
		case slots <- struct{}{}:
		}
		if interrupted {
			break
		}
		sent = append(sent, i)
		r.live.start()
		wg.Go(func() {
			defer func() { <-slots }()
			r.outcomes[i] = r.sendOnNewConnection(base, i)
			r.live.done(r.outcomes[i])
		})
	}
	wg.Wait()
	return sent, time.Since(start), interrupted
}

// sendOnNewConnection makes request i on a connection of its own; the TLS handshake counts in its latency.
func (r *runner) sendOnNewConnection(base context.Context, i int) outcome {
	start := time.Now()
	client, closeConn, err := r.connectOne()
	if err != nil {
		return outcome{latency: time.Since(start), code: codes.Unavailable, msg: "loadtest: " + err.Error()}
	}
	defer closeConn()
	o := r.send(base, client, i)
	o.latency = time.Since(start)
	return o
}

func (r *runner) connectOne() (pb.IstioCertificateServiceClient, func(), error) {
	if r.connect != nil {
		return r.connect()
	}
	c, err := newConn(r.cfg)
	if err != nil {
		return nil, nil, err
	}
	return pb.NewIstioCertificateServiceClient(c), func() { c.Close() }, nil
}
