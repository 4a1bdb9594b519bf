package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"testing"
)

// image is an archive as a registry client would read it: every blob checked against its digest.
type image struct {
	index struct {
		Manifests []descriptor
	}
	manifest struct {
		MediaType string
		Config    descriptor
		Layers    []descriptor
	}
	docker []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	config   ImageConfig
	files    map[string]*tar.Header // layer entries by path, without a leading /
	contents map[string][]byte
}

// readImage opens an archive mkimage wrote and follows oci-layout → index.json → manifest → config and layer,
// failing the test on any digest, size or media-type mismatch.
func readImage(t *testing.T, path string) *image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		entries[h.Name] = b
	}
	if string(entries["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Fatalf("oci-layout %q", entries["oci-layout"])
	}
	blob := func(d descriptor, mediaType string) []byte {
		t.Helper()
		b, ok := entries[blobPath(d.Digest)]
		switch {
		case !ok:
			t.Fatalf("blob %s missing", d.Digest)
		case digest(b) != d.Digest || int64(len(b)) != d.Size:
			t.Fatalf("blob %s: digest %s, size %d (descriptor says %d)", d.Digest, digest(b), len(b), d.Size)
		case d.MediaType != mediaType:
			t.Fatalf("blob %s: media type %s, want %s", d.Digest, d.MediaType, mediaType)
		}
		return b
	}
	img := &image{files: map[string]*tar.Header{}, contents: map[string][]byte{}}
	mustJSON(t, entries["index.json"], &img.index)
	mustJSON(t, entries["manifest.json"], &img.docker)
	if len(img.index.Manifests) != 1 {
		t.Fatalf("index.json has %d manifests, want 1", len(img.index.Manifests))
	}
	mustJSON(t, blob(img.index.Manifests[0], mediaManifest), &img.manifest)
	mustJSON(t, blob(img.manifest.Config, mediaConfig), &img.config)
	if len(img.manifest.Layers) != 1 || len(img.config.RootFS.DiffIDs) != 1 {
		t.Fatalf("%d layers, %d diff_ids: want one of each", len(img.manifest.Layers), len(img.config.RootFS.DiffIDs))
	}
	zr, err := gzip.NewReader(bytes.NewReader(blob(img.manifest.Layers[0], mediaLayer)))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("sha256:%x", sha256.Sum256(raw)); got != img.config.RootFS.DiffIDs[0] {
		t.Fatalf("layer diff_id %s, config says %s", got, img.config.RootFS.DiffIDs[0])
	}
	lr := tar.NewReader(bytes.NewReader(raw))
	for {
		h, err := lr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(lr)
		img.files[h.Name], img.contents[h.Name] = h, b
	}
	// docker load's view must name the same blobs.
	if len(img.docker) != 1 || img.docker[0].Config != blobPath(img.manifest.Config.Digest) ||
		len(img.docker[0].Layers) != 1 || img.docker[0].Layers[0] != blobPath(img.manifest.Layers[0].Digest) {
		t.Fatalf("manifest.json %+v does not name the OCI manifest's blobs", img.docker)
	}
	return img
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
}
