package server

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/types/known/structpb"
	pb "istio.io/api/security/v1alpha1"

	"github.com/meshca/meshca/ca"
	"github.com/meshca/meshca/ca/authn"
)

// MaxRequestBytes bounds a CreateCertificate message; larger ones are refused by gRPC with ResourceExhausted.
const MaxRequestBytes = 64 << 10

// workloadIssuer is all the gRPC facade may do with the issuance core: issue to an authenticated caller.
// meshca's own serving certificate (ca.Issuer.IssueServing) is deliberately out of its reach.
type workloadIssuer interface {
	Issue(ctx context.Context, req *ca.Request) (*ca.Result, error)
}

// service implements istio.v1.auth.IstioCertificateService.
type service struct {
	pb.UnimplementedIstioCertificateServiceServer
	issuer workloadIssuer
}

// CreateCertificate authenticates the caller from its metadata and TLS peer, and issues the certificate its
// CSR asks for if that is the caller's identity. The chain is [leaf, intermediates..., root], one PEM
// certificate per element, as istiod answers.
func (s *service) CreateCertificate(
	ctx context.Context,
	req *pb.IstioCertificateRequest,
) (*pb.IstioCertificateResponse, error) {
	creds, p := credentialsFrom(ctx)
	r := &ca.Request{
		Credentials: creds,
		CSR:         []byte(req.GetCsr()),
		TTL:         time.Duration(req.GetValidityDuration()) * time.Second,
		Peer:        p,
	}
	if req.GetValidityDuration() > int64(ca.MaxRequestTTL/time.Second) {
		r.TTL = ca.MaxRequestTTL // policy clamps it
	}
	for k, v := range req.GetMetadata().GetFields() {
		str, isString := v.GetKind().(*structpb.Value_StringValue)
		switch {
		case !isString:
			r.DecodeErr = fmt.Errorf("metadata %.64q must be a string", k)
		case k == "ImpersonatedIdentity" && str.StringValue == "":
			r.DecodeErr = errors.New("metadata ImpersonatedIdentity must be a non-empty SPIFFE ID string")
		case k == "ImpersonatedIdentity":
			r.ImpersonatedIdentity = str.StringValue
		default:
			if r.Metadata == nil {
				r.Metadata = map[string]string{}
			}
			r.Metadata[k] = str.StringValue
		}
	}
	res, err := s.issuer.Issue(ctx, r)
	if err != nil {
		return nil, statusFor(err)
	}
	// One certificate per element, and the whole trust bundle as the last one: istio-agent and ztunnel take
	// the mesh's trust anchors only from there (as from istiod, which sends its bundle unflattened).
	chain := make([]string, 0, len(res.Chain))
	for _, c := range res.Chain[:len(res.Chain)-1] {
		chain = append(chain, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})))
	}
	chain = append(chain, string(res.TrustBundle))
	return &pb.IstioCertificateResponse{CertChain: chain}, nil
}

// credentialsFrom reads what istio-agent and ztunnel send: "authorization: Bearer <JWT>", "clusterid", and
// the TLS client certificate when one was presented.
func credentialsFrom(ctx context.Context) (authn.Request, string) {
	var r authn.Request
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		for _, v := range md.Get("authorization") {
			if tok, ok := cutPrefixFold(v, "Bearer "); ok {
				r.Token = strings.TrimSpace(tok)
				break
			}
		}
		if v := md.Get("clusterid"); len(v) > 0 {
			r.ClusterID = v[0]
		}
	}
	addr := ""
	if p, ok := peer.FromContext(ctx); ok {
		if p.Addr != nil {
			addr = p.Addr.String()
		}
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			r.PeerCertificates = ti.State.PeerCertificates
		}
	}
	return r, addr
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return "", false
}

// MaxHeaderBytes bounds a request's metadata (gRPC) and headers (HTTP): a bearer token is at most
// authn.MaxTokenSize (16 KiB), so 32 KiB leaves room for the rest and refuses floods of headers.
const MaxHeaderBytes = 32 << 10

// readBufferSize is each gRPC connection's read buffer (gRPC's default is 32 KiB). A CreateCertificate
// request is a few KiB with its token; in a restart storm thousands of connections are open at once, and
// 32 KiB each is 64 MiB at 2,048 connections.
const readBufferSize = 8 << 10

// grpcServerOptions are the limits every meshca gRPC server runs with: message and header sizes, streams per
// connection, a handshake deadline, idle connections closed after five minutes,
// clients that ping more often than every 30 seconds sent away (istio-agent's CA client does not ping at
// all), and a small read buffer per connection.
func grpcServerOptions(creds credentials.TransportCredentials) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.Creds(creds),
		grpc.ReadBufferSize(readBufferSize),
		grpc.MaxRecvMsgSize(MaxRequestBytes),
		grpc.MaxHeaderListSize(MaxHeaderBytes),
		grpc.MaxConcurrentStreams(1000),
		grpc.ConnectionTimeout(10 * time.Second),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: 5 * time.Minute}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 30 * time.Second}),
	}
}

func pemChain(certs []*x509.Certificate) []byte {
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return b
}
