package admintoken_test

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshca/meshca/internal/admintoken"
)

func TestWriteThenReadGivesTheTokenToItsOwnerOnly(t *testing.T) {
	tok, err := admintoken.Generate()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "run", "admin-token")
	if err := admintoken.Write(path, tok); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	got, err := admintoken.Read(path)
	if err != nil || got != tok {
		t.Fatalf("Read = %q, %v; want %q", got, err, tok)
	}
	other, _ := admintoken.Generate()
	if other == tok {
		t.Fatal("two tokens are equal")
	}
	if err := admintoken.Write(path, other); err != nil {
		t.Fatal(err)
	}
	if got, _ := admintoken.Read(path); got != other {
		t.Fatalf("after a second Write, Read = %q; want the new token", got)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".admin-token-*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestParseRefusesWhatIsNotAToken(t *testing.T) {
	tok, _ := admintoken.Generate()
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"a token with a newline is one", tok + "\n", true},
		{"an empty file is not", "", false},
		{"a short token is not", tok[:10], false},
		{"a token of non-hex characters is not", strings.Repeat("z", 64), false},
		{"a huge file is not", strings.Repeat("a", 4096), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := admintoken.Parse([]byte(tc.in))
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, admintoken.ErrInvalid)) {
				t.Fatalf("Parse: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestRequireLetsThroughOnlyTheToken(t *testing.T) {
	tok, _ := admintoken.Generate()
	wrong, _ := admintoken.Generate()
	refused := 0
	h := admintoken.Require("test", tok, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "served")
	}), slog.New(slog.DiscardHandler), func() { refused++ })
	for _, tc := range []struct {
		name, header string
		code         int
	}{
		{"a request without a header is refused", "", http.StatusUnauthorized},
		{"a wrong token is refused", "Bearer " + wrong, http.StatusUnauthorized},
		{"the token without the scheme is refused", tok, http.StatusUnauthorized},
		{"a prefix of the token is refused", "Bearer " + tok[:63], http.StatusUnauthorized},
		{"the token in another scheme is refused", "Basic " + tok, http.StatusUnauthorized},
		{"the token is served", "Bearer " + tok, http.StatusOK},
		{"the scheme is case-insensitive", "bearer " + tok, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/v1/crls", nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.code {
				t.Fatalf("%d, want %d: %s", rec.Code, tc.code, rec.Body)
			}
			if (rec.Body.String() == "served") != (tc.code == http.StatusOK) {
				t.Fatalf("body %q", rec.Body)
			}
		})
	}
	if refused != 5 {
		t.Errorf("refused counted %d times, want 5", refused)
	}
	empty := admintoken.Require("test", "", http.NotFoundHandler(), slog.New(slog.DiscardHandler), nil)
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Authorization", "Bearer ")
	rec := httptest.NewRecorder()
	if empty.ServeHTTP(rec, req); rec.Code != http.StatusUnauthorized {
		t.Fatalf("an empty token let an empty bearer through: %d", rec.Code)
	}
}

func FuzzParse(f *testing.F) {
	tok, _ := admintoken.Generate()
	f.Add([]byte(tok + "\n"))
	f.Add([]byte(""))
	f.Add([]byte("  " + tok[:32]))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := admintoken.Parse(b)
		if err != nil {
			return
		}
		if len(got) != 64 || !admintoken.Valid("Bearer "+got, got) {
			t.Fatalf("Parse accepted %q", got)
		}
	})
}

func FuzzValid(f *testing.F) {
	tok, _ := admintoken.Generate()
	f.Add("Bearer " + tok)
	f.Add("bearer")
	f.Add("")
	f.Fuzz(func(t *testing.T, h string) {
		if admintoken.Valid(h, tok) && !strings.Contains(h, tok) {
			t.Fatalf("Valid accepted %q without the token", h)
		}
	})
}
