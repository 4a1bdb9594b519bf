package testproc_test

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshca/meshca/internal/testproc"
)

func TestFreePortCanBeBound(t *testing.T) {
	p, err := testproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		t.Fatalf("port %d from FreePort cannot be bound: %v", p, err)
	}
	l.Close()
}

func TestWaitReadyReportsAnExitWithTheLogTail(t *testing.T) {
	p, err := testproc.Start(exec.Command("sh", "-c", "echo bind: address already in use >&2; exit 3"),
		filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	err = p.WaitReady(10*time.Second, 10*time.Millisecond, func() error { return errors.New("not yet") })
	if !errors.Is(err, testproc.ErrExited) || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("WaitReady = %v, want ErrExited with the log's last line", err)
	}
}

func TestWaitReadyTimesOut(t *testing.T) {
	p, err := testproc.Start(exec.Command("sleep", "30"), filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(time.Second) })
	start := time.Now()
	err = p.WaitReady(200*time.Millisecond, 10*time.Millisecond, func() error { return errors.New("no answer") })
	if err == nil || errors.Is(err, testproc.ErrExited) || !strings.Contains(err.Error(), "no answer") {
		t.Fatalf("WaitReady = %v, want a timeout naming the last probe error", err)
	}
	if took := time.Since(start); took < 200*time.Millisecond || took > 2*time.Second {
		t.Fatalf("WaitReady took %s, want about its 200ms timeout", took)
	}
}

func TestStopEndsAStoppedProcessAndIsIdempotent(t *testing.T) {
	p, err := testproc.Start(exec.Command("sleep", "30"), filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Stop of a SIGSTOPped process took %s: SIGTERM must reach it without waiting for SIGKILL", took)
	}
	select {
	case <-p.Exited():
	default:
		t.Fatal("the process still runs after Stop")
	}
	if err := p.Stop(time.Second); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestStopKillsAProcessThatIgnoresSIGTERM(t *testing.T) {
	spin := exec.Command("sh", "-c", "trap '' TERM; while :; do :; done")
	p, err := testproc.Start(spin, filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the shell install its trap
	if err := p.Stop(300 * time.Millisecond); err == nil {
		t.Fatal("Stop of a process ignoring SIGTERM returned nil, want an error saying it was killed")
	}
}

// TestSuspendReturnsOnceTheProcessIsStopped: after Suspend the process makes no progress at all (its log stops
// growing at once), and after Resume it goes on. The process is this test binary spinning on more threads than
// there are CPUs, so that SIGSTOP alone leaves some of them running for a while.
func TestSuspendReturnsOnceTheProcessIsStopped(t *testing.T) {
	log := filepath.Join(t.TempDir(), "log")
	spinner := exec.Command(os.Args[0], "-test.run=^$")
	spinner.Env = append(os.Environ(), "TESTPROC_SPIN=1")
	p, err := testproc.Start(spinner, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(time.Second) })
	size := func() int64 {
		fi, err := os.Stat(log)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	time.Sleep(50 * time.Millisecond)
	if err := p.Suspend(5 * time.Second); err != nil {
		t.Fatalf("Suspend: %v", err)
	}
	stopped := size()
	time.Sleep(200 * time.Millisecond)
	if grown := size() - stopped; grown != 0 {
		t.Fatalf("the log grew by %d bytes after Suspend returned", grown)
	}
	if err := p.Resume(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if size() == stopped {
		t.Fatal("the log did not grow after Resume")
	}
}

func TestMain(m *testing.M) {
	if os.Getenv("TESTPROC_SPIN") != "" {
		spin()
	}
	os.Exit(m.Run())
}

// spin writes to stdout from eight threads until it is killed.
func spin() {
	runtime.GOMAXPROCS(8)
	for range 8 {
		go func() {
			for {
				os.Stdout.WriteString("tick\n")
			}
		}()
	}
	select {}
}

func TestKillEndsAProcessThatIgnoresSIGTERMAtOnce(t *testing.T) {
	spin := exec.Command("sh", "-c", "trap '' TERM; while :; do :; done")
	p, err := testproc.Start(spin, filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p.Kill()
	p.Kill() // a second Kill finds it gone
	select {
	case <-p.Exited():
	default:
		t.Fatal("Kill returned before the process exited")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Kill took %s", took)
	}
}
