package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/meshca/meshca/backends"
)

// tokenState is what the backend knows about its current token. The token itself lives only in the client.
type tokenState struct {
	obtained  time.Time
	ttl       time.Duration // 0: the token does not expire
	renewable bool
	fileData  string // the TokenFile content the token came from, to notice rotation
}

// expires returns when the token expires, or the zero time when it does not.
func (t *tokenState) expires() time.Time {
	if t.ttl == 0 {
		return time.Time{}
	}
	return t.obtained.Add(t.ttl)
}

// refreshAt returns when the background goroutine should renew or replace the token: after two thirds of its
// life, so that one failed attempt still leaves time for retries. The zero time means never.
func (t *tokenState) refreshAt() time.Time {
	if t.ttl == 0 {
		return time.Time{}
	}
	return t.obtained.Add(t.ttl * 2 / 3)
}

// tokenFilePoll is how often a token file is checked for rotation.
const tokenFilePoll = 30 * time.Second

// refreshToken makes sure the client holds a live token: at start (initial) it takes or logs in for one;
// later it renews a renewable token and, for the login methods, logs in again when renewal is not possible.
func (b *Backend) refreshToken(ctx context.Context, initial bool) error {
	a := &b.cfg.Auth
	cur := b.token.Load()
	if a.Method == AuthToken {
		tok, data, err := b.readToken()
		if err != nil {
			return err
		}
		if initial || cur == nil || data != cur.fileData {
			b.client.SetToken(tok)
			st, err := b.lookupSelf(ctx)
			if err != nil {
				return err
			}
			st.fileData = data
			b.token.Store(st)
			if !initial {
				b.cfg.Logger.Info("vault token file changed; using the new token", "file", a.TokenFile,
					"ttl", st.ttl.String())
			}
			b.warnExpiry(st)
			return nil
		}
		if !cur.renewable || cur.ttl == 0 || b.cfg.Clock().Before(cur.refreshAt()) {
			return nil
		}
		st, err := b.renew(ctx, cur)
		if err != nil {
			return err
		}
		st.fileData = cur.fileData
		b.token.Store(st)
		b.warnExpiry(st)
		return nil
	}
	if !initial && cur != nil && cur.renewable && cur.ttl > 0 {
		st, err := b.renew(ctx, cur)
		if err == nil && st.ttl >= cur.ttl/2 {
			b.token.Store(st)
			return nil
		}
		// Not renewable far enough (token max_ttl reached) or renewal refused: log in afresh.
	}
	return b.doLogin(ctx)
}

// warnExpiry logs when a token given by the operator cannot be kept alive.
func (b *Backend) warnExpiry(st *tokenState) {
	if st.ttl > 0 && !st.renewable {
		b.cfg.Logger.Warn("vault token is not renewable and will expire: rotate tokenFile before then or use "+
			"approle or kubernetes auth",
			"expires", st.expires().UTC())
	}
}

func (b *Backend) readToken() (token, fileData string, err error) {
	a := &b.cfg.Auth
	if a.TokenFile == "" {
		return string(a.Token), "", nil
	}
	raw, err := b.cfg.ReadFile(a.TokenFile)
	if err != nil {
		return "", "", fmt.Errorf("vault: reading auth.tokenFile: %w", err)
	}
	tok := strings.TrimSpace(string(raw))
	if tok == "" {
		return "", "", fmt.Errorf("vault: auth.tokenFile %s is empty", a.TokenFile)
	}
	return tok, tok, nil
}

// lookupSelf asks Vault about the client's token.
func (b *Backend) lookupSelf(ctx context.Context) (*tokenState, error) {
	cctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	now := b.cfg.Clock()
	sec, err := b.client.Auth().Token().LookupSelfWithContext(cctx)
	if err != nil {
		return nil, b.classify(cctx, "looking up meshca's token", "auth/token/lookup-self", err)
	}
	if sec == nil || sec.Data == nil {
		return nil, errors.New("vault: empty answer to auth/token/lookup-self")
	}
	st := &tokenState{obtained: now}
	if n, ok := sec.Data["ttl"].(json.Number); ok {
		secs, _ := n.Int64()
		st.ttl = time.Duration(secs) * time.Second
	}
	st.renewable, _ = sec.Data["renewable"].(bool)
	return st, nil
}

// renew extends the client's token by its previous TTL.
func (b *Backend) renew(ctx context.Context, cur *tokenState) (*tokenState, error) {
	cctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	now := b.cfg.Clock()
	sec, err := b.client.Auth().Token().RenewSelfWithContext(cctx, int(cur.ttl/time.Second))
	if err != nil {
		return nil, b.classify(cctx, "renewing meshca's token", "auth/token/renew-self", err)
	}
	if sec == nil || sec.Auth == nil {
		return nil, errors.New("vault: empty answer to auth/token/renew-self")
	}
	st := &tokenState{obtained: now, ttl: time.Duration(sec.Auth.LeaseDuration) * time.Second,
		renewable: sec.Auth.Renewable}
	b.cfg.Logger.Debug("vault token renewed", "ttl", st.ttl.String())
	return st, nil
}

// doLogin logs in with the configured method (for AuthToken: re-reads the token file) and installs the new
// token.
func (b *Backend) doLogin(ctx context.Context) error {
	a := &b.cfg.Auth
	var data map[string]any
	switch a.Method {
	case AuthToken:
		tok, fileData, err := b.readToken()
		if err != nil {
			return err
		}
		b.client.SetToken(tok)
		st, err := b.lookupSelf(ctx)
		if err != nil {
			return err
		}
		st.fileData = fileData
		b.token.Store(st)
		b.cfg.Logger.Info("vault token re-read from file", "file", a.TokenFile, "ttl", st.ttl.String())
		return nil
	case AuthAppRole:
		secretID := string(a.SecretID)
		if a.SecretIDFile != "" {
			raw, err := b.cfg.ReadFile(a.SecretIDFile)
			if err != nil {
				return fmt.Errorf("vault: reading auth.secretIDFile: %w", err)
			}
			secretID = strings.TrimSpace(string(raw))
		}
		data = map[string]any{"role_id": a.RoleID, "secret_id": secretID}
	case AuthKubernetes, AuthJWT:
		raw, err := b.cfg.ReadFile(a.JWTFile) // re-read at every login: the kubelet rotates projected tokens
		if err != nil {
			return fmt.Errorf("vault: reading auth.jwtFile: %w", err)
		}
		data = map[string]any{"role": a.Role, "jwt": strings.TrimSpace(string(raw))}
	default:
		return fmt.Errorf("vault: auth method %q cannot log in", a.Method)
	}
	path := "auth/" + a.MountPath + "/login"
	cctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	now := b.cfg.Clock()
	sec, err := b.login.Logical().WriteWithContext(cctx, path, data)
	if err != nil {
		err = b.classify(cctx, "logging in", path, err)
		if errors.Is(err, backends.ErrRefused) {
			err = fmt.Errorf("%w: check the %s credentials and the Vault role", err, a.Method)
		}
		return err
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		return fmt.Errorf("vault: %s answered without a token", path)
	}
	b.client.SetToken(sec.Auth.ClientToken)
	st := &tokenState{obtained: now, ttl: time.Duration(sec.Auth.LeaseDuration) * time.Second,
		renewable: sec.Auth.Renewable}
	b.token.Store(st)
	b.cfg.Logger.Info("vault login succeeded", "method", a.Method, "mount", a.MountPath, "ttl", st.ttl.String(),
		"renewable", st.renewable, "policies", sec.Auth.Policies)
	return nil
}

// errTokenValid means Vault denied a request although meshca's token is valid: a policy problem that a new
// login would not fix.
var errTokenValid = errors.New("meshca's Vault token is valid")

// relogin gets a new token after Vault denied the one that was used, unless another caller already replaced it.
// It first asks Vault about the current token: when the token is fine, the denial comes from a policy and
// relogin returns errTokenValid instead of logging in (a misconfigured policy must not cause a login per
// request). Concurrent callers share one attempt.
func (b *Backend) relogin(ctx context.Context, used string) error {
	if b.client.Token() != used {
		return nil
	}
	_, err, _ := b.flight.Do("login", func() (any, error) {
		if b.client.Token() != used {
			return nil, nil
		}
		ctx := context.WithoutCancel(ctx)
		if _, err := b.lookupSelf(ctx); err == nil {
			return nil, errTokenValid
		}
		b.cfg.Logger.Warn("vault denied meshca's token; logging in again", "method", b.cfg.Auth.Method)
		return nil, b.doLogin(ctx)
	})
	return err
}

// nextTokenCheck returns when the token should next be renewed, replaced or its file checked.
func (b *Backend) nextTokenCheck() time.Time {
	st := b.token.Load()
	next := st.refreshAt()
	if b.cfg.Auth.Method == AuthToken && !st.renewable {
		next = time.Time{} // nothing to do but wait for a new token file
	}
	if b.cfg.Auth.TokenFile != "" {
		if poll := b.cfg.Clock().Add(tokenFilePoll); next.IsZero() || poll.Before(next) {
			next = poll
		}
	}
	return next
}

// run connects (when New could not) and then keeps the token alive and the CA chain fresh until ctx ends.
func (b *Backend) run(ctx context.Context) {
	defer close(b.done)
	const maxBackoff = 30 * time.Second
	backoff := time.Second
	wait := func(d time.Duration) bool {
		t := time.NewTimer(max(d, 0))
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	for b.ca.Load() == nil {
		if !wait(backoff) {
			return
		}
		if err := b.connect(ctx); err != nil {
			b.initErr.Store(&err)
			b.cfg.Logger.Warn("vault still unreachable", "address", b.cfg.Address, "retry_in", backoff.String(),
				"error", err)
			backoff = min(2*backoff, maxBackoff)
		}
	}
	backoff = time.Second
	nextToken := b.nextTokenCheck()
	nextChain := b.cfg.Clock().Add(b.cfg.RefreshInterval)
	for {
		next := nextChain
		if !nextToken.IsZero() && nextToken.Before(next) {
			next = nextToken
		}
		if !wait(next.Sub(b.cfg.Clock())) {
			return
		}
		now := b.cfg.Clock()
		if !nextToken.IsZero() && !now.Before(nextToken) {
			if err := b.refreshToken(ctx, false); err != nil {
				st := b.token.Load()
				b.cfg.Logger.Error("vault token refresh failed; retrying", "method", b.cfg.Auth.Method,
					"retry_in", backoff.String(), "token_expires", st.expires().UTC(), "error", err)
				nextToken = now.Add(backoff)
				backoff = min(2*backoff, maxBackoff)
			} else {
				backoff = time.Second
				nextToken = b.nextTokenCheck()
			}
		}
		if !now.Before(nextChain) {
			if err := b.refreshCAChain(ctx, b.ca.Load().anchors); err != nil {
				b.cfg.Logger.Warn("vault CA chain refresh failed; keeping the previous chain", "mount", b.cfg.Mount,
					"error", err)
				nextChain = now.Add(maxBackoff)
			} else {
				nextChain = now.Add(b.cfg.RefreshInterval)
			}
		}
	}
}
