package rotation

import (
	"fmt"
	"os"
	"syscall"
)

// Lock takes an exclusive lock beside the state file, so that two `meshca rotation` commands do not change
// it at once; call the returned function to release it.
func Lock(statePath string) (func(), error) {
	f, err := os.OpenFile(statePath+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("rotation: lock state file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("rotation: lock state file: %w", err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
