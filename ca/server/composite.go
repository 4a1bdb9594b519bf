package server

import "net/http"

// serveCompositeRoots answers /roots-composite.pem: the roots of the composite ML-DSA-65 + ECDSA-P256 CAs
// (ca.Issuer.CompositeRoots), 404 when none is configured.
func (s *Server) serveCompositeRoots(w http.ResponseWriter, r *http.Request) {
	roots, err := s.issuer.CompositeRoots(r.Context())
	if err != nil {
		s.cfg.Logger.Error("serving /roots-composite.pem", "error", err)
		http.Error(w, "roots unavailable", http.StatusServiceUnavailable)
		return
	}
	if len(roots) == 0 {
		http.Error(w, "no composite CA is configured (backends[].file.compositeDir)", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Write(pemChain(roots))
}
