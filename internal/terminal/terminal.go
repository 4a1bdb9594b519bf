package terminal

import (
	"io"
	"os"
)

// Is reports whether w is a character device such as a terminal; any writer that is not an *os.File is not.
func Is(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
