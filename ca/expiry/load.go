package expiry

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// LoadPath scans a PEM file, or every regular file directly inside a directory (a cacerts directory, an
// istio-agent OUTPUT_CERTS directory, a mounted Secret), as one Set. Names starting with "." are skipped, as
// are files holding no PEM; symbolic links are followed, so Kubernetes' ..data swap is read like any file. A
// path that cannot be read gives a Set with a ProblemUnreadable.
func LoadPath(path string) *Set {
	src, files, err := readPath(path)
	if err != nil {
		return unreadable(src, err)
	}
	return ParseSet(src, files)
}

// readPath returns the Source for path and the PEM files it names.
func readPath(path string) (Source, map[string][]byte, error) {
	path = filepath.Clean(path)
	src := Source{Kind: KindFile, Name: bound(path, maxLabel)}
	st, err := os.Stat(path)
	if err != nil {
		return src, nil, err
	}
	if !st.IsDir() {
		src.Name, src.Key = bound(filepath.Dir(path), maxLabel), bound(filepath.Base(path), maxLabel)
		data, err := readFile(path)
		if err != nil {
			return src, nil, err
		}
		return src, map[string][]byte{filepath.Base(path): data}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return src, nil, err
	}
	files := map[string][]byte{}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(path, e.Name())
		if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() {
			continue
		}
		data, err := readFile(p)
		if err != nil {
			return src, nil, err
		}
		if bytes.Contains(data, []byte("-----BEGIN ")) {
			files[e.Name()] = data
		}
	}
	return src, files, nil
}

// readFile reads at most maxKeyBytes of a file and refuses a larger one.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxKeyBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes", filepath.Base(path), maxKeyBytes)
	}
	return data, nil
}

// unreadable is the Set of a source that could not be read.
func unreadable(src Source, err error) *Set {
	return &Set{Source: src, Problems: []SourceProblem{{Source: src,
		Problem: Problem{Kind: ProblemUnreadable, Detail: bound(err.Error(), maxDetail)}}}}
}

// digest identifies the content of a set of files, so an unchanged set is not parsed again.
func digest(files map[string][]byte) [sha256.Size]byte {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		fmt.Fprintf(h, "%d:%s:%d:", len(n), n, len(files[n]))
		h.Write(files[n])
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}
