package loadtest

import (
	"os"
	"testing"
)

func TestParseProc(t *testing.T) {
	stat := "4242 (meshca (x) y) S 1 4242 4242 0 -1 4194560 9000 0 3 0 1234 567 0 0 20 0 12 0 100 0 0"
	tests := []struct {
		name    string
		stat    string
		wantCPU float64
		wantErr bool
	}{
		{"utime and stime after a command name holding spaces and parentheses", stat, 18.01, false},
		{"a line cut short is refused", "4242 (meshca) S 1 2 3", 0, true},
		{"a line without a command name is refused", "4242 meshca S", 0, true},
		{"a non-numeric utime is refused", "1 (a) S 1 1 1 0 -1 0 0 0 0 0 x 5 0", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatCPU([]byte(tt.stat))
			if (err != nil) != tt.wantErr || got != tt.wantCPU {
				t.Errorf("parseStatCPU = %v, %v; want %v, error %v", got, err, tt.wantCPU, tt.wantErr)
			}
		})
	}
	hwm, err := parseStatusHWM([]byte("Name:\tmeshca\nVmPeak:\t 9 kB\nVmHWM:\t   51200 kB\nVmRSS:\t 1 kB\n"))
	if err != nil || hwm != 50<<20 {
		t.Errorf("parseStatusHWM = %v, %v; want 50 MiB", hwm, err)
	}
	if _, err := parseStatusHWM([]byte("VmRSS:\t 1 kB\n")); err == nil {
		t.Error("parseStatusHWM accepted a status without VmHWM")
	}
	own, err := readProc(os.Getpid())
	if err != nil || own.cpuSeconds < 0 || own.peakRSS < 1<<20 {
		t.Errorf("readProc(self) = %+v, %v", own, err)
	}
}

func FuzzParseProc(f *testing.F) {
	f.Add([]byte("4242 (meshca) S 1 4242 4242 0 -1 4194560 9000 0 3 0 1234 567 0 0 20 0 12 0 100 0 0"))
	f.Add([]byte("VmHWM:\t   51200 kB\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if cpu, err := parseStatCPU(b); err == nil && cpu < 0 {
			t.Errorf("negative CPU %v", cpu)
		}
		if hwm, err := parseStatusHWM(b); err == nil && hwm < 0 {
			t.Errorf("negative VmHWM %v", hwm)
		}
	})
}

func TestBackoffDoublesFrom100msUpTo3200ms(t *testing.T) {
	for attempt, want := range []float64{0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 3.2, 3.2} {
		for range 20 {
			if got := backoff(attempt).Seconds(); got < want*0.9 || got > want*1.1 {
				t.Fatalf("backoff(%d) = %vs, want %vs ± 10%%", attempt, got, want)
			}
		}
	}
}
