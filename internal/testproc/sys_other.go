//go:build !linux

package testproc

import (
	"syscall"
	"time"
)

func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// allThreadsStopped cannot look at threads outside Linux; it gives SIGSTOP a moment to take effect.
func allThreadsStopped(int) (bool, error) {
	time.Sleep(100 * time.Millisecond)
	return true, nil
}
