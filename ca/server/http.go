package server

import (
	"context"
	"encoding/pem"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := s.ready(ctx); err != nil {
			// The detail (backend addresses, paths) goes to the log only: /readyz answers anyone.
			s.cfg.Logger.Warn("not ready", "error", err)
			http.Error(w, "not ready; see meshca's log", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /roots.pem", func(w http.ResponseWriter, r *http.Request) {
		roots, err := s.issuer.Roots(r.Context())
		if err != nil {
			s.cfg.Logger.Error("serving /roots.pem", "error", err)
			http.Error(w, "roots unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Write(pemChain(roots))
	})
	// The ML-DSA roots have their own output: Envoy reads /roots.pem's set and cannot load them (envoy#42893).
	mux.HandleFunc("GET /roots-mldsa.pem", func(w http.ResponseWriter, r *http.Request) {
		roots, err := s.issuer.PostQuantumRoots(r.Context())
		if err != nil {
			s.cfg.Logger.Error("serving /roots-mldsa.pem", "error", err)
			http.Error(w, "roots unavailable", http.StatusServiceUnavailable)
			return
		}
		if len(roots) == 0 {
			http.Error(w, "no ML-DSA CA is configured", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Write(pemChain(roots))
	})
	// The composite roots have their own output too: only meshca's own verifier checks composite signatures,
	// and the draft's encodings may still change (docs/design-notes.md, #11).
	mux.HandleFunc("GET /roots-composite.pem", s.serveCompositeRoots)
	crl := func(asPEM bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			source := s.cfg.CRL
			if asPEM && s.cfg.CRLPEM != nil {
				source = s.cfg.CRLPEM
			}
			if source == nil {
				http.Error(w, "no CRL is published by this CA's backends", http.StatusNotFound)
				return
			}
			der, err := source(r.Context())
			if errors.Is(err, ErrNoCRL) {
				http.Error(w, "no CRL is published by this CA", http.StatusNotFound)
				return
			}
			if errors.Is(err, ErrCRLNotCurrent) {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			if err != nil {
				s.cfg.Logger.Error("serving the CRL", "error", err)
				http.Error(w, "CRL unavailable", http.StatusServiceUnavailable)
				return
			}
			if asPEM {
				w.Header().Set("Content-Type", "application/x-pem-file")
				if s.cfg.CRLPEM != nil {
					w.Write(der) // already the concatenated PEM
					return
				}
				w.Write(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}))
				return
			}
			w.Header().Set("Content-Type", "application/pkix-crl")
			w.Write(der)
		}
	}
	for path, h := range s.cfg.Pages {
		mux.Handle("GET "+path, h)
	}
	mux.HandleFunc("GET /crl", crl(false))
	mux.HandleFunc("GET /crl.pem", crl(true))
	return mux
}
