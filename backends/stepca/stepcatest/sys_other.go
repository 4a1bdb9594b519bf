//go:build !linux

package stepcatest

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }
