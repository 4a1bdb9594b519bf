package expiry

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// DefaultFilesInterval is how often a FileWatcher reads its paths again when FilesConfig.Interval is zero.
const DefaultFilesInterval = 30 * time.Second

// FilesConfig configures a FileWatcher.
type FilesConfig struct {
	// Paths are the files and directories to scan: PEM files, cacerts directories, istio-agent OUTPUT_CERTS
	// directories, mounted Secrets.
	Paths []string `json:"paths"`
	// Interval is how often the files are read again; a set whose content is unchanged is not parsed again.
	// Default 30s.
	Interval time.Duration `json:"interval,omitempty"`
	// Inventory receives the sets; required.
	Inventory *Inventory `json:"-"`
	// Logger receives changes and read errors; default slog.Default().
	Logger *slog.Logger `json:"-"`
}

// Validate reports every problem with c at once. It has no side effects.
func (c *FilesConfig) Validate() error {
	var errs []error
	if len(c.Paths) == 0 {
		errs = append(errs, errors.New("expiry: paths is empty: name at least one file or directory to scan"))
	}
	for i, p := range c.Paths {
		if p == "" {
			errs = append(errs, fmt.Errorf("expiry: paths[%d] is empty", i))
		}
	}
	if c.Interval < 0 {
		errs = append(errs, fmt.Errorf("expiry: interval %s is negative", c.Interval))
	}
	return errors.Join(errs...)
}

// FileWatcher scans files and directories into an Inventory and scans them again periodically. Polling by
// content digest sees Kubernetes' atomic symlink swaps and in-place edits alike, as the file backend does.
type FileWatcher struct {
	cfg     FilesConfig
	digests map[string][sha256.Size]byte
	errs    map[string]string
	sources map[string]Source // the Source each path was last stored under
}

// NewFileWatcher checks cfg and returns a watcher; call Scan or Run to read the files.
func NewFileWatcher(cfg FilesConfig) (*FileWatcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Inventory == nil {
		return nil, errors.New("expiry: FilesConfig.Inventory is nil")
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultFilesInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &FileWatcher{cfg: cfg, digests: map[string][sha256.Size]byte{}, errs: map[string]string{},
		sources: map[string]Source{}}, nil
}

// Scan reads every path once and updates the inventory where the content changed. It is not safe to call
// concurrently with itself or Run.
func (w *FileWatcher) Scan() {
	for _, path := range w.cfg.Paths {
		src, files, err := readPath(path)
		if old, ok := w.sources[path]; ok && old != src { // a file that vanished, a directory that became a file
			w.cfg.Inventory.Delete(old)
		}
		w.sources[path] = src
		if err != nil {
			if w.errs[path] != err.Error() {
				w.cfg.Logger.Warn("expiry: cannot read a watched path", "path", bound(path, maxLabel), "error", err)
				w.errs[path] = err.Error()
			}
			delete(w.digests, path)
			w.cfg.Inventory.Put(unreadable(src, err))
			continue
		}
		delete(w.errs, path)
		d := digest(files)
		if old, ok := w.digests[path]; ok && old == d {
			continue
		}
		w.digests[path] = d
		set := ParseSet(src, files)
		w.cfg.Inventory.Put(set)
		w.cfg.Logger.Info("expiry: scanned", "path", bound(path, maxLabel), "certificates", len(set.Certs),
			"crls", len(set.CRLs), "problems", len(set.Problems))
	}
}

// Run scans at once and then every Interval until ctx ends.
func (w *FileWatcher) Run(ctx context.Context) {
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		w.Scan()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
