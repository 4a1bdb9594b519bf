package testproc

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. Another process may take it before the
// server binds it, so harnesses retry on another port when a start fails and check that the server that
// answers is theirs.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("testproc: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Process is a started server whose stdout and stderr go to a log file.
type Process struct {
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
	err    error // Wait's result; read only after exited is closed
}

// Start starts cmd with its stdout and stderr appended to logPath. The process gets its own process group
// and, on Linux, is killed when the test binary dies without stopping it.
func Start(cmd *exec.Cmd, logPath string) (*Process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("testproc: opening the log: %w", err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("testproc: starting %s: %w", cmd.Path, err)
	}
	p := &Process{cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	return p, nil
}

// PID returns the process ID.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// ExitError returns how the process ended (nil while it runs or after a clean exit).
func (p *Process) ExitError() error {
	select {
	case <-p.exited:
		return p.err
	default:
		return nil
	}
}

// Signal sends sig to the process (not its group).
func (p *Process) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// Suspend stops the process with SIGSTOP, as a hung server, and returns once every thread has stopped.
// kill(2) returns before that: the kernel wakes one thread to act on the signal, and until it runs the other
// threads keep running, so on a busy machine a request sent right after kill can still be answered.
func (p *Process) Suspend(timeout time.Duration) error {
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		return fmt.Errorf("testproc: SIGSTOP to pid %d: %w", p.PID(), err)
	}
	deadline := time.Now().Add(timeout)
	for {
		stopped, err := allThreadsStopped(p.PID())
		if err != nil || stopped {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testproc: pid %d did not stop within %s of SIGSTOP", p.PID(), timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// Resume continues a process stopped by Suspend.
func (p *Process) Resume() error { return p.Signal(syscall.SIGCONT) }

// Stop stops the process by its PID: SIGTERM, then SIGKILL once grace has passed. It waits for the exit and
// returns an error when the process had to be killed. It is safe to call more than once.
func (p *Process) Stop(grace time.Duration) error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGCONT) // a stopped process cannot act on SIGTERM
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("testproc: %s (pid %d) ignored SIGTERM for %s and was killed", p.cmd.Path, p.PID(), grace)
	}
}

// Kill kills the process and its process group (Start gave it one of its own) with SIGKILL, without a grace
// period, and waits for the process to exit. It is safe to call more than once.
func (p *Process) Kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	if err := syscall.Kill(-p.PID(), syscall.SIGKILL); err != nil {
		_ = p.cmd.Process.Kill()
	}
	<-p.exited
}

// Log returns the process's log so far.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// LogTail returns at most the last n bytes of the log, trimmed, for error messages.
func (p *Process) LogTail(n int) string {
	l := p.Log()
	if len(l) > n {
		l = "…" + l[len(l)-n:]
	}
	return strings.TrimSpace(l)
}

// ErrExited means the process exited before it was ready.
var ErrExited = errors.New("testproc: the process exited")

// WaitReady calls ready every interval until it returns nil, the process exits or timeout passes. The error
// says which, with ready's last error and the tail of the log.
func (p *Process) WaitReady(timeout, interval time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		select {
		case <-p.exited:
			return fmt.Errorf("%w (%v) before it was ready; last probe: %v; log:\n%s", ErrExited, p.err, err,
				p.LogTail(4000))
		default:
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testproc: %s (pid %d) not ready after %s; last probe: %v; log:\n%s", p.cmd.Path,
				p.PID(), timeout, err, p.LogTail(4000))
		}
		select {
		case <-p.exited:
		case <-time.After(interval):
		}
	}
}
