package loadtest

import (
	"context"
	mrand "math/rand/v2"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"
)

// send makes request i on client, retrying what istio-agent retries up to Retries times, and checks the
// response.
// Latency runs from the first attempt to the last answer.
func (r *runner) send(base context.Context, client pb.IstioCertificateServiceClient, i int) outcome {
	c := r.cfg
	var p prepared
	if r.prepared != nil {
		p = r.prepared[i]
	} else {
		var err error
		if p, err = newCSR(c.Key, r.asked(i)); err != nil {
			return outcome{code: codes.Internal, msg: "loadtest: generating the CSR: " + err.Error()}
		}
	}
	req := &pb.IstioCertificateRequest{Csr: string(p.csr), ValidityDuration: int64(c.ValidityDuration / time.Second)}
	start := time.Now()
	var resp *pb.IstioCertificateResponse
	var err error
	o := outcome{}
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(base, c.Timeout)
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+r.token(i), "clusterid", c.ClusterID)
		resp, err = client.CreateCertificate(ctx, req)
		cancel()
		if !retried[status.Code(err)] || attempt >= c.Retries {
			break
		}
		o.retries++
		r.retries.Add(1)
		time.Sleep(backoff(attempt))
	}
	o.latency, o.code = time.Since(start), status.Code(err)
	if err != nil {
		o.msg = status.Convert(err).Message()
		return o
	}
	if r.foreign(i) {
		o.invalid, o.msg = true, "meshca issued a certificate for an identity other than the caller's"
		return o
	}
	if err := check(resp.GetCertChain(), r.asked(i).String(), p.pub, c.Roots, c.CompositeRoots); err != nil {
		o.invalid, o.msg = true, err.Error()
	}
	return o
}

// retried are the codes istio-agent's CA client retries (pkg/security/retry.go) that a server can send:
// ResourceExhausted (meshca's flood limits), Unavailable and DeadlineExceeded (a connection or handshake that
// did not make it in a storm), Aborted and Internal.
var retried = map[codes.Code]bool{codes.ResourceExhausted: true, codes.Unavailable: true,
	codes.DeadlineExceeded: true, codes.Aborted: true, codes.Internal: true}

// backoff is istio-agent's wait before retry number attempt+1 (pkg/security/retry.go): 100 ms doubling,
// with up to 10 % jitter either way. istio-agent makes 5 retries (the longest wait 1.6 s) before its secret
// cache starts over; beyond the fifth the wait stays at 3.2 s.
func backoff(attempt int) time.Duration {
	d := 100 * time.Millisecond << min(attempt, 5)
	return d + time.Duration((mrand.Float64()*0.2-0.1)*float64(d))
}
