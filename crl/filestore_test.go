package crl_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/meshca/meshca/crl"
)

// crashEnv, when set in the environment of this test binary, makes it a child that revokes in a loop into the
// state file it names (see TestMain and TestFileStoreLosesNoAcknowledgedRevocationOnSIGKILL).
const crashEnv = "MESHCA_CRL_CRASH_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(crashEnv); path != "" {
		if err := crashChild(path); err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var crashCA = crl.CAID("ski:0102030405060708090a0b0c0d0e0f1011121314")

// crashChild revokes serials one by one, printing each serial after Revoke returned, until it is killed. Each
// revocation also records issued certificates so the file grows and writes take a while.
func crashChild(path string) error {
	s, err := crl.OpenFile(path)
	if err != nil {
		return err
	}
	ctx := context.Background()
	reg, err := crl.NewRegistry(ctx, crl.RegistryConfig{Store: s, FlushInterval: time.Hour, Logger: discard()})
	if err != nil {
		return err
	}
	next := int64(1)
	for _, e := range reg.Entries() {
		next = max(next, e.Serial.Int64()+1)
	}
	notAfter := time.Now().Add(24 * time.Hour)
	for i := next; ; i++ {
		for j := range int64(20) {
			rec := crl.Issuance{Serial: big.NewInt(1_000_000 + i*100 + j), CA: crashCA, NotAfter: notAfter,
				Identity: "spiffe://cluster.local/ns/crash/sa/sa-" + strconv.FormatInt(j, 10)}
			if err := reg.Record(rec); err != nil {
				return err
			}
		}
		req := crl.RevokeRequest{Serial: big.NewInt(i), CA: crashCA, NotAfter: notAfter}
		if _, err := reg.Revoke(ctx, req); err != nil {
			return err
		}
		if _, err := fmt.Fprintln(os.Stdout, i); err != nil { // the acknowledgement
			return err
		}
	}
}

func TestFileStoreLosesNoAcknowledgedRevocationOnSIGKILL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "revocations.json")
	acked := map[int64]bool{}
	rounds := 6
	if testing.Short() {
		rounds = 2
	}
	for round := range rounds {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashEnv+"="+path)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		acks := make(chan int64, 1024)
		go func() {
			defer close(acks)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				i, err := strconv.ParseInt(sc.Text(), 10, 64)
				if err != nil {
					t.Errorf("child printed %q", sc.Text())
					return
				}
				acks <- i
			}
		}()
		killAfter := 10 + rand.IntN(60)
		for n := 0; n < killAfter; n++ {
			i, ok := <-acks
			if !ok {
				t.Fatalf("round %d: the child stopped after %d acknowledgements", round, n)
			}
			acked[i] = true
		}
		if round%2 == 0 {
			// Kill at a random point of the next writes.
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		} else {
			// Kill the instant the file starts to change: a write that is not atomic is caught in the middle.
			killOnChange(t, path)
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		for i := range acks {
			acked[i] = true
		}
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: the child ended with %v, not by SIGKILL", round, err)
		}
		s, err := crl.OpenFile(path)
		if err != nil {
			t.Fatalf("round %d: reopening after SIGKILL: %v", round, err)
		}
		st, err := s.Load(context.Background())
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		have := map[int64]bool{}
		for _, e := range st.Revoked {
			have[e.Serial.Int64()] = true
		}
		for i := range acked {
			if !have[i] {
				t.Fatalf("round %d: acknowledged revocation of serial %d lost (%d acknowledged, %d stored)",
					round, i, len(acked), len(have))
			}
		}
		if temps, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".revocations.json.tmp-*")); len(temps) != 0 {
			t.Errorf("round %d: reopening left temporary files %v", round, temps)
		}
	}
	t.Logf("%d rounds, %d acknowledged revocations, all present", rounds, len(acked))
}

// killOnChange returns as soon as the file at path differs from what it is now (size, time or inode), or
// after two seconds.
func killOnChange(t *testing.T, path string) {
	t.Helper()
	first, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		fi, err := os.Stat(path)
		if err != nil || fi.Size() != first.Size() || !fi.ModTime().Equal(first.ModTime()) || !os.SameFile(fi, first) {
			return
		}
	}
}

func TestFileStoreIsLockedAgainstASecondUser(t *testing.T) {
	path := filepath.Join(t.TempDir(), "revocations.json")
	openStore(t, path)
	if s, err := crl.OpenFile(path); !errors.Is(err, crl.ErrLocked) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("second OpenFile: %v, want ErrLocked", err)
	}
}

func TestFileStoreNeverOverwritesACorruptState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "revocations.json")
	bad := []byte(`{"version":1,"revoked":[{"serial":"zz"}]}`)
	if err := os.WriteFile(path, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := crl.OpenFile(path); !errors.Is(err, crl.ErrCorrupt) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("OpenFile on a corrupt state: %v, want ErrCorrupt", err)
	}
	if got, _ := os.ReadFile(path); string(got) != string(bad) {
		t.Fatal("the corrupt state was modified")
	}
}
