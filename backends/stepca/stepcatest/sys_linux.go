package stepcatest

import "syscall"

// sysProcAttr makes the kernel kill step-ca if the test binary dies without running its cleanups.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
