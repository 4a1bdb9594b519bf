package crl

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
)

// FileStore keeps the State in one local file for a single meshca instance. Every change replaces the file
// whole: the new state is written to a temporary file in the same directory, which is synced, renamed over the
// old one, and the directory synced. A crash at any point leaves either the old or the new state, never a
// mixture, and an Update that returned has reached the disk.
//
// An exclusive lock (flock(2) on "<path>.lock") keeps a second process from using the same file.
type FileStore struct {
	path string
	lock *os.File
	mu   sync.Mutex // serialises writers
	cur  *State
	rev  uint64
}

var _ Store = (*FileStore)(nil)

// OpenFile opens (or starts) the state at path and locks it. A missing file is an empty state; its directory
// must exist. Close releases the lock.
func OpenFile(path string) (*FileStore, error) {
	if path == "" {
		return nil, fmt.Errorf("crl: %w: the revocation state file path is empty", ErrInvalidRequest)
	}
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("crl: opening the lock of the revocation state %s: %w", path, err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("crl: %w: %s (another meshca uses it; a file store serves one instance, use "+
				"the Kubernetes store for replicas)", ErrLocked, path)
		}
		return nil, fmt.Errorf("crl: locking the revocation state %s: %w", path, err)
	}
	s := &FileStore{path: path, lock: lock, cur: &State{}, rev: 1}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		lock.Close()
		return nil, fmt.Errorf("crl: reading the revocation state: %w", err)
	default:
		if s.cur, err = Unmarshal(data); err != nil {
			lock.Close()
			return nil, fmt.Errorf("%w (file %s: restore it from a backup, or move it away to start empty and "+
				"lose its revocations)", err, path)
		}
	}
	removeTemps(s.path)
	s.cur.Revision = strconv.FormatUint(s.rev, 10)
	return s, nil
}

// removeTemps deletes the temporary files of writeAtomic(path) a crash left behind; they never hold the only
// copy of anything.
func removeTemps(path string) {
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(path), tempPrefix(path)+"*"))
	for _, m := range matches {
		_ = os.Remove(m)
	}
}

func tempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

// Path returns the state file's path.
func (s *FileStore) Path() string { return s.path }

// Close releases the lock. The store must not be used afterwards.
func (s *FileStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lock.Close()
}

// Load returns a copy of the current state.
func (s *FileStore) Load(ctx context.Context) (*State, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.Clone(), nil
}

// Update applies fn and, when it changed the state, writes the file. fn runs once: this process is the only
// writer.
func (s *FileStore) Update(ctx context.Context, fn func(*State) (bool, error)) (*State, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.cur.Clone()
	changed, err := fn(next)
	if err != nil {
		return nil, err
	}
	if !changed {
		return s.cur.Clone(), nil
	}
	data, err := Marshal(next)
	if err != nil {
		return nil, fmt.Errorf("crl: encoding the revocation state: %w", err)
	}
	if err := s.write(data); err != nil {
		return nil, fmt.Errorf("crl: writing the revocation state %s: %w", s.path, err)
	}
	s.rev++
	next.Revision = strconv.FormatUint(s.rev, 10)
	s.cur = next
	return next.Clone(), nil
}

// write replaces the file with data (writeAtomic).
func (s *FileStore) write(data []byte) error { return writeAtomic(s.path, data, 0o600) }

// writeAtomic replaces the file at path with data: a temporary file in the same directory (named with
// tempPrefix) with mode perm, fsync, rename, fsync of the directory. A reader sees the old or the new content,
// never a part, and after a crash the file is one or the other.
func writeAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tempPrefix(path))
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) { // some file systems cannot sync a directory
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}
