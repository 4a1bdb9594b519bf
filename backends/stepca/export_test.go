package stepca

import (
	"context"
	"sync"

	"github.com/meshca/meshca/backends"
)

// Replayer signs through a Backend but sends the first one-time token it minted with every later request, as
// someone who captured a token would replay it.
type Replayer struct {
	*Backend
	mu    sync.Mutex
	first string
}

// Sign signs req with the first token minted through r.
func (r *Replayer) Sign(ctx context.Context, req *backends.SignRequest) (*backends.SignResponse, error) {
	sans, err := checkRequest(req)
	if err != nil {
		return nil, err
	}
	body, err := r.signBody(req, sans)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if r.first == "" {
		r.first = body.OTT
	}
	body.OTT = r.first
	r.mu.Unlock()
	return r.sendSign(ctx, req, body)
}

// FirstToken returns the token r replays.
func (r *Replayer) FirstToken() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.first
}
