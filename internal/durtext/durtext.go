package durtext

import (
	"strings"
	"time"
)

// Short formats d without zero components: 1h, 90s, 1h30m, 1m30s. It is what time.ParseDuration reads back.
func Short(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
