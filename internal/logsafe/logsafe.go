package logsafe

import "strconv"

// MaxLen bounds a caller-supplied string in logs, audit records and messages.
const MaxLen = 64

// String makes a caller-supplied string safe to log: at most MaxLen bytes (longer strings are cut and marked
// with "..."), control and non-ASCII characters escaped as by %q, without the quotes.
func String(s string) string {
	cut := len(s) > MaxLen
	if cut {
		s = s[:MaxLen]
	}
	q := strconv.QuoteToASCII(s)
	q = q[1 : len(q)-1]
	if cut {
		q += "..."
	}
	return q
}
