package ca

import (
	"context"
	"log/slog"
	"time"

	"github.com/meshca/meshca/ca/authn"
	"github.com/meshca/meshca/internal/logsafe"
)

// auditRecord collects what one request did, for one structured log line. It never holds the token, the CSR
// or any key.
type auditRecord struct {
	peer, clusterID string
	caller          *authn.Caller
	identity        string
	keyType         string
	rule            string
	certSigner      string
	backend         string
	serial          string
	notAfter        time.Time
	// workload says caller is the workload itself (not a registration authority); impersonated that it is a
	// node agent asking with ImpersonatedIdentity.
	workload, impersonated bool
}

func (r *auditRecord) log(ctx context.Context, l *slog.Logger, c Class, err error, elapsed time.Duration) {
	attrs := []slog.Attr{
		slog.String("outcome", c.Outcome),
		slog.String("reason", c.Reason),
		slog.String("peer", r.peer),
		slog.Duration("duration", elapsed),
	}
	clusterID := r.clusterID // the header, until a credential proves the caller's cluster
	if r.caller != nil {
		clusterID = r.caller.ClusterID
	}
	if clusterID != "" {
		attrs = append(attrs, slog.String("cluster_id", Bounded(clusterID)))
	}
	if c := r.caller; c != nil {
		attrs = append(attrs, slog.String("caller", "ns/"+c.Namespace+"/sa/"+c.ServiceAccount),
			slog.String("authn", c.Method))
		if c.PodName != "" {
			attrs = append(attrs, slog.String("pod", c.PodName))
		}
	}
	if r.identity != "" {
		attrs = append(attrs, slog.String("identity", r.identity))
	}
	if r.keyType != "" {
		attrs = append(attrs, slog.String("key_type", r.keyType))
	}
	if r.rule != "" {
		attrs = append(attrs, slog.String("rule", r.rule))
	}
	if r.certSigner != "" {
		attrs = append(attrs, slog.String("cert_signer", Bounded(r.certSigner)))
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
		l.LogAttrs(ctx, slog.LevelWarn, "certificate request not served", attrs...)
		return
	}
	attrs = append(attrs, slog.String("backend", r.backend), slog.String("serial", r.serial),
		slog.Time("not_after", r.notAfter.UTC()))
	l.LogAttrs(ctx, slog.LevelInfo, "certificate issued", attrs...)
}

// Bounded makes a caller-supplied string safe to log: at most 64 bytes (longer strings are cut and marked
// with "..."), control and non-ASCII characters escaped as by %q. Callers choose what they send; they do not
// choose how much of meshca's log it fills.
func Bounded(s string) string { return logsafe.String(s) }
