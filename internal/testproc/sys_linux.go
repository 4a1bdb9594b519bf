package testproc

import (
	"bytes"
	"fmt"
	"os"
	"syscall"
)

// sysProcAttr puts the server in its own process group and has the kernel kill it if the test binary dies
// without running its cleanups.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// allThreadsStopped reports whether every thread of pid is in the stopped state ('T' in /proc/<pid>/task/*/stat).
func allThreadsStopped(pid int) (bool, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return false, fmt.Errorf("testproc: threads of pid %d: %w", pid, err)
	}
	for _, t := range tasks {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, t.Name()))
		if err != nil {
			continue // the thread exited
		}
		// "tid (comm) state ...": comm may hold spaces and parentheses, the state follows the last ')'.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 || i+2 >= len(stat) {
			return false, fmt.Errorf("testproc: unexpected %s", stat)
		}
		switch stat[i+2] {
		case 'T', 't', 'Z', 'X':
		default:
			return false, nil
		}
	}
	return true, nil
}
