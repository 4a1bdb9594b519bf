package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// ErrNotStatic is returned for a binary that is not a statically linked Linux ELF executable.
var ErrNotStatic = errors.New("mkimage: not a static Linux executable")

// The nonroot user, as in distroless images and manifests/base/deployment.yaml (runAsUser, runAsGroup).
const (
	nonrootUID = 65532
	nonrootGID = 65532
	// Entrypoint is where the binary lives in the image.
	Entrypoint = "/meshca"
)

const (
	passwd = "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
		"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group = "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"
	// Go's resolver reads it for the order of /etc/hosts and DNS.
	nsswitch = "hosts: files dns\n"
)

// goArch maps an ELF machine to the GOARCH (and OCI architecture) name.
var goArch = map[elf.Machine]string{
	elf.EM_X86_64: "amd64", elf.EM_AARCH64: "arm64", elf.EM_PPC64: "ppc64le", elf.EM_S390: "s390x",
	elf.EM_RISCV: "riscv64",
}

// inspectBinary checks that path is a statically linked Linux executable (no program interpreter: the image
// has no libc) and returns its architecture.
func inspectBinary(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrNotStatic, path, err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return "", fmt.Errorf("%w: %s is ELF type %v", ErrNotStatic, path, f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", fmt.Errorf("%w: %s is dynamically linked: build with CGO_ENABLED=0", ErrNotStatic, path)
		}
	}
	arch, ok := goArch[f.Machine]
	if !ok {
		return "", fmt.Errorf("%w: %s: unsupported machine %v", ErrNotStatic, path, f.Machine)
	}
	return arch, nil
}

// layer is a compressed layer and the digests the manifest and the config need.
type layer struct {
	gz     []byte // tar+gzip
	diffID string // sha256:<hex> of the uncompressed tar
}

type entry struct {
	name string
	mode int64
	uid  int
	dir  bool
	data []byte
}

// buildLayer writes the root file system: directories first, in a fixed order, all owned by root except the
// nonroot user's home, every time set to created.
func buildLayer(binary, caBundle []byte, created time.Time) (*layer, error) {
	entries := []entry{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
		{name: "etc/nsswitch.conf", mode: 0o644, data: []byte(nsswitch)},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
	}
	if caBundle != nil {
		entries = append(entries,
			entry{name: "etc/ssl/", mode: 0o755, dir: true},
			entry{name: "etc/ssl/certs/", mode: 0o755, dir: true},
			entry{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: caBundle})
	}
	entries = append(entries,
		entry{name: "home/", mode: 0o755, dir: true},
		entry{name: "home/nonroot/", mode: 0o700, uid: nonrootUID, dir: true},
		entry{name: Entrypoint[1:], mode: 0o755, data: binary},
		entry{name: "tmp/", mode: 0o1777, dir: true})

	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.uid, ModTime: created,
			Typeflag: tar.TypeReg, Size: int64(len(e.data)), Format: tar.FormatPAX}
		if e.dir {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("mkimage: layer entry %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("mkimage: layer entry %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(zw, bytes.NewReader(raw.Bytes())); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return &layer{gz: gz.Bytes(), diffID: digest(raw.Bytes())}, nil
}

func digest(b []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(b)) }

// readOptional reads path, or returns nil when path is empty.
func readOptional(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	return os.ReadFile(path)
}
