package durtext

import (
	"testing"
	"time"
)

func TestShort(t *testing.T) {
	tests := []struct {
		name string
		d    time.Duration
		want string
	}{
		{"whole hours drop minutes and seconds", 24 * time.Hour, "24h"},
		{"whole minutes drop seconds", 5 * time.Minute, "5m"},
		{"hours and minutes drop seconds", 90 * time.Minute, "1h30m"},
		{"seconds stay", 90 * time.Second, "1m30s"},
		{"hours, minutes and seconds stay", time.Hour + time.Minute + time.Second, "1h1m1s"},
		{"sub-second values are as time.Duration writes them", 1500 * time.Millisecond, "1.5s"},
		{"zero is 0s", 0, "0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Short(tt.d); got != tt.want {
				t.Fatalf("Short(%v) = %q, want %q", tt.d, got, tt.want)
			}
			if back, err := time.ParseDuration(Short(tt.d)); err != nil || back != tt.d {
				t.Fatalf("ParseDuration(%q) = %v, %v; want %v back", Short(tt.d), back, err, tt.d)
			}
		})
	}
}
