package loadtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is Linux's USER_HZ, the unit of utime and stime in /proc/PID/stat (100 on every Linux ABI).
const clockTicks = 100

// procStats is what the kernel's process accounting says about a local server process.
type procStats struct {
	cpuSeconds float64 // utime + stime
	peakRSS    float64 // VmHWM, bytes: the largest resident set since the process started
}

// readProc reads /proc/PID/stat and /proc/PID/status.
func readProc(pid int) (procStats, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStats{}, fmt.Errorf("server pid %d: %w", pid, err)
	}
	cpu, err := parseStatCPU(stat)
	if err != nil {
		return procStats{}, fmt.Errorf("server pid %d: %w", pid, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procStats{}, fmt.Errorf("server pid %d: %w", pid, err)
	}
	hwm, err := parseStatusHWM(status)
	if err != nil {
		return procStats{}, fmt.Errorf("server pid %d: %w", pid, err)
	}
	return procStats{cpuSeconds: cpu, peakRSS: hwm}, nil
}

// parseStatCPU returns utime + stime in seconds from the contents of /proc/PID/stat (proc(5)): the fields
// after the command name, which is in parentheses and may itself hold spaces and parentheses.
func parseStatCPU(b []byte) (float64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("/proc stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 { // state is field 3; utime and stime are fields 14 and 15
		return 0, errors.New("/proc stat: too few fields")
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc stat: %w", err)
	}
	return float64(u+s) / clockTicks, nil
}

// parseStatusHWM returns VmHWM in bytes from the contents of /proc/PID/status.
func parseStatusHWM(b []byte) (float64, error) {
	for line := range strings.SplitSeq(string(b), "\n") {
		v, ok := strings.CutPrefix(line, "VmHWM:")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("/proc status: VmHWM %q", v)
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc status: VmHWM: %w", err)
		}
		return float64(kb) * 1024, nil
	}
	return 0, errors.New("/proc status: no VmHWM")
}
