package rotation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// The rotation admin API: a JSON API on a loopback listener (rotation.adminAddr) that `meshca rotation
// plan|start|status|pause|resume|rollback|force|advance` call. Loopback keeps it from the workloads; meshca
// wraps Handler so that every call must also carry the admin token it writes to adminTokenFile at start
// (internal/admintoken), which keeps it from other processes sharing meshca's network namespace.

// Paths of the API.
const (
	StatusPath = "/v1/rotation"
	ChangePath = "/v1/rotation/change"
)

// DefaultAdminAddr is the rotation admin API's listen address unless rotation.adminAddr says otherwise.
const DefaultAdminAddr = "127.0.0.1:15017"

// maxBody bounds a request body: two PEM roots and a reason.
const maxBody = 64 << 10

// ChangeRequest asks the leader for one Change.
type ChangeRequest struct {
	Action Action `json:"action"`
	Force  bool   `json:"force,omitempty"`
	Reason string `json:"reason,omitempty"`
	// DryRun reports what the change would do (and, forced, break) without doing it.
	DryRun bool `json:"dryRun,omitempty"`
	// Generation, when set, must be the state's generation: a guard against acting on a stale view.
	Generation uint64 `json:"generation,omitempty"`
	// NextRoot and OldRoot (PEM) and MaxLeafLifetime (a Go duration) are for start.
	NextRoot        string `json:"nextRoot,omitempty"`
	OldRoot         string `json:"oldRoot,omitempty"`
	MaxLeafLifetime string `json:"maxLeafLifetime,omitempty"`
}

// Status is the rotation as one replica sees it, and the answer to every request.
type Status struct {
	State    *State    `json:"state"`
	Progress *Progress `json:"progress"`
	// Next is the phase an advance leads to; Gate is empty when the advance keeps the invariant, else why not.
	Next Phase  `json:"next,omitempty"`
	Gate string `json:"gate,omitempty"`
	// Breaks lists what forcing the advance would break, when the gate is closed.
	Breaks []string `json:"breaks,omitempty"`
	// Replicas lists what the other replicas' reports hold (on the leader, in a cluster).
	Replicas []string `json:"replicas,omitempty"`
	// SwitchesCA says whether meshca switches the signing CA itself at activation (the file backend's
	// nextDir); otherwise the operator switches it.
	SwitchesCA bool `json:"switchesCA,omitempty"`
	// Leading says whether this replica may change the state; Identity names it.
	Leading  bool   `json:"leading"`
	Identity string `json:"identity"`
	// Transition is the change just made (POST).
	Transition *Transition `json:"transition,omitempty"`
}

// errorBody is the body of every non-200 answer; Kind names the sentinel error (errKinds).
type errorBody struct {
	Error string `json:"error"`
	Kind  string `json:"kind,omitempty"`
}

// errKinds maps the sentinel errors to their names on the wire and to HTTP statuses.
var errKinds = []struct {
	name   string
	err    error
	status int
}{
	{"invalid_change", ErrInvalidChange, http.StatusBadRequest},
	{"invalid_root", ErrInvalidRoot, http.StatusBadRequest},
	{"next_ca", ErrNextCA, http.StatusBadRequest},
	{"gate_closed", ErrGateClosed, http.StatusConflict},
	{"stale_progress", ErrStaleProgress, http.StatusConflict},
	{"wrong_phase", ErrWrongPhase, http.StatusConflict},
	{"conflict", ErrConflict, http.StatusConflict},
	{"not_leader", ErrNotLeader, http.StatusConflict},
	{"unauthorized", ErrUnauthorized, http.StatusUnauthorized},
}

// Status reports the rotation as this replica sees it.
func (c *Controller) Status() *Status {
	s := c.State()
	p := withPeers(c.progressOf(s), c.peers.Load())
	st := &Status{State: s, Progress: p, Leading: c.Leading(), Identity: c.cfg.Identity, SwitchesCA: c.SwitchesCA()}
	if next, err := s.Next(); err == nil {
		st.Next = next
		if err := s.Gate(p); err != nil {
			st.Gate, st.Breaks = err.Error(), s.Breaks(p)
		}
	}
	return st
}

// Breaks lists, for a closed gate, who forcing the advance would leave with a leaf their peers do not trust
// or a bundle that does not trust their peers' leaves.
func (s *State) Breaks(p *Progress) []string {
	var out []string
	if p == nil || !p.Complete {
		out = append(out, "holders meshca has not seen since its start may hold only the old root")
	}
	if p == nil {
		return out
	}
	for _, l := range p.Laggards {
		what := "lacks the next root: it will refuse peers with leaves from the new CA"
		if s.Phase != PhasePublishing {
			what = "holds a leaf from the old CA: peers will refuse it once the old root is dropped"
		}
		out = append(out, fmt.Sprintf("%s %s (certificate expires %s)", l.Identity, what,
			l.NotAfter.UTC().Format(time.RFC3339)))
	}
	return out
}

// Handler serves the rotation admin API for c.
func Handler(c *Controller, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+StatusPath, func(w http.ResponseWriter, r *http.Request) {
		st := c.Status()
		if st.Leading && st.State.Phase != PhaseIdle {
			probs, err := c.replicaProblems(r.Context(), st.State, false)
			if err != nil {
				probs = []string{err.Error()}
			}
			st.Replicas = probs
		}
		writeJSON(w, st)
	})
	mux.HandleFunc("POST "+ChangePath, func(w http.ResponseWriter, r *http.Request) {
		var req ChangeRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, fmt.Errorf("%w: the request is not a rotation change: %w", ErrInvalidChange, err))
			return
		}
		ch, err := req.change()
		if err != nil {
			writeError(w, err)
			return
		}
		if req.DryRun {
			st := c.Status()
			if _, err := st.State.Next(); err != nil && req.Action == ActionAdvance {
				writeError(w, err)
				return
			}
			writeJSON(w, st)
			return
		}
		s, t, err := c.Do(r.Context(), ch, req.Generation)
		if err != nil {
			log.Warn("rotation admin: change refused", "remote", r.RemoteAddr, "action", bounded(string(req.Action)),
				"error", err)
			writeError(w, err)
			return
		}
		st := c.Status()
		st.State, st.Transition = s, &t
		writeJSON(w, st)
	})
	return mux
}

// change checks req and turns it into a Change.
func (req *ChangeRequest) change() (Change, error) {
	ch := Change{Action: req.Action, Force: req.Force, Reason: req.Reason}
	switch req.Action {
	case ActionStart:
		var err error
		if req.NextRoot != "" { // empty: the next CA's root (Config.CASwitch)
			if ch.Next, err = ParseRoot([]byte(req.NextRoot)); err != nil {
				return ch, fmt.Errorf("nextRoot: %w", err)
			}
		}
		if req.OldRoot != "" { // empty: the root of the CA in use
			if ch.Old, err = ParseRoot([]byte(req.OldRoot)); err != nil {
				return ch, fmt.Errorf("oldRoot: %w", err)
			}
		}
		if req.MaxLeafLifetime != "" {
			if ch.MaxLeafLifetime, err = time.ParseDuration(req.MaxLeafLifetime); err != nil {
				return ch, fmt.Errorf("%w: maxLeafLifetime: %w", ErrInvalidChange, err)
			}
		}
	case ActionAdvance, ActionRollback, ActionPause, ActionResume:
		if req.NextRoot != "" || req.OldRoot != "" || req.MaxLeafLifetime != "" {
			return ch, fmt.Errorf("%w: roots and a lifetime go with start only", ErrInvalidChange)
		}
	default:
		return ch, fmt.Errorf("%w: unknown action %q", ErrInvalidChange, bounded(string(req.Action)))
	}
	return ch, nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	status, kind := http.StatusInternalServerError, ""
	for _, k := range errKinds {
		if errors.Is(err, k.err) {
			status, kind = k.status, k.name
			break
		}
	}
	msg := err.Error()
	if status == http.StatusInternalServerError {
		msg = "the rotation change failed; see meshca's log"
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errorBody{Error: bounded(msg), Kind: kind})
}

// bounded cuts a caller-supplied or long string for logs and answers.
func bounded(s string) string {
	if len(s) > 512 {
		return s[:512] + "…"
	}
	return s
}

// checkLoopback refuses an admin address that is not on loopback.
func checkLoopback(addr string) error {
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("rotation.adminAddr: %q is not host:port (e.g. %s)", bounded(addr), DefaultAdminAddr)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("rotation.adminAddr: %q is not a loopback address: the admin API has no "+
			"authentication of its own (reach it with kubectl port-forward)", bounded(addr))
	}
	return nil
}

// Listen opens the admin listener on addr (DefaultAdminAddr when empty).
func Listen(addr string) (net.Listener, error) {
	if addr == "" {
		addr = DefaultAdminAddr
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("rotation.adminAddr: %w", err)
	}
	return l, nil
}

// Serve serves the rotation admin API on l until ctx ends.
func Serve(ctx context.Context, l net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	log.Info("rotation admin API listening", "addr", l.Addr().String())
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("rotation admin API: %w", err)
	}
	return nil
}
