package admintoken

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/meshca/meshca/internal/logsafe"
)

// tokenBytes is the token's entropy; the file holds it hex-encoded.
const tokenBytes = 32

// maxFile bounds what Read reads: a token file is 64 hex characters and a newline.
const maxFile = 1 << 10

// ErrInvalid means a token file or an Authorization header does not hold a well-formed token.
var ErrInvalid = errors.New("not a meshca admin token")

// Generate returns a new random token: 32 bytes from crypto/rand, hex-encoded.
func Generate() (string, error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// Write stores token in path, readable by its owner only (0600): it writes a temporary file in the same
// directory, then renames it over path, so that a reader sees the old token or the new one, never a part. The
// directory is created (0700) when missing.
func Write(path, token string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".admin-token-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.WriteString(token + "\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Read returns the token in path, as Write stored it.
func Read(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return "", err
	}
	return Parse(b)
}

// Parse returns the token held in b, the contents of a token file: 64 hex characters, surrounding white space
// ignored.
func Parse(b []byte) (string, error) {
	if len(b) > maxFile {
		return "", fmt.Errorf("%w: the file is longer than %d bytes", ErrInvalid, maxFile)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) != 2*tokenBytes {
		return "", fmt.Errorf("%w: want %d hex characters, the file holds %d bytes", ErrInvalid, 2*tokenBytes,
			len(tok))
	}
	if _, err := hex.DecodeString(tok); err != nil {
		return "", fmt.Errorf("%w: want %d hex characters", ErrInvalid, 2*tokenBytes)
	}
	return tok, nil
}

// Set puts token in req's Authorization header.
func Set(req *http.Request, token string) { req.Header.Set("Authorization", "Bearer "+token) }

// Valid reports whether the Authorization header value h carries token, comparing in constant time.
func Valid(h, token string) bool {
	const prefix = "bearer "
	if token == "" || len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(h[len(prefix):])), []byte(token)) == 1
}

// Require lets through to next only requests that carry token (Authorization: Bearer <token>); the others get
// 401 with a JSON error body naming the flag that gives the token, are logged to log as api, and counted by
// refused when it is not nil.
func Require(api, token string, next http.Handler, log *slog.Logger, refused func()) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if Valid(r.Header.Get("Authorization"), token) {
			next.ServeHTTP(w, r)
			return
		}
		log.Warn("admin: refused a request without the admin token", "api", api, "remote", r.RemoteAddr,
			"method", r.Method, "path", logsafe.String(r.URL.Path), "token_sent", r.Header.Get("Authorization") != "")
		if refused != nil {
			refused()
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="meshca admin"`)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":"the admin token is missing or wrong: pass --admin-token-file `+
			`(meshca writes it at start to adminTokenFile)","kind":"unauthorized"}`+"\n")
	})
}
