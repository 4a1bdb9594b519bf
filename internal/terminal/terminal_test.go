package terminal_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/meshca/meshca/internal/terminal"
)

func TestIs(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tty, err := os.OpenFile("/dev/null", os.O_WRONLY, 0) // a character device, as a terminal is
	if err != nil {
		t.Skip("no /dev/null")
	}
	defer tty.Close()
	for _, tc := range []struct {
		name string
		w    interface{ Write([]byte) (int, error) }
		want bool
	}{
		{"a buffer is not a terminal", &bytes.Buffer{}, false},
		{"a regular file is not a terminal", f, false},
		{"a character device counts as one", tty, true},
	} {
		if got := terminal.Is(tc.w); got != tc.want {
			t.Errorf("%s: Is = %v, want %v", tc.name, got, tc.want)
		}
	}
}
