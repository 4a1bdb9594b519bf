package catest

import (
	"testing"
	"time"
)

// Eventually retries check every 20ms until it returns nil, and returns how long that took; after timeout it
// fails the test with what and check's last error.
func Eventually(tb testing.TB, timeout time.Duration, what string, check func() error) time.Duration {
	tb.Helper()
	start := time.Now()
	var err error
	for time.Since(start) < timeout {
		if err = check(); err == nil {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatalf("%s: not within %s: %v", what, timeout, err)
	return 0
}
