package main

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Media types of the OCI image specification (v1.1).
const (
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaIndex    = "application/vnd.oci.image.index.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// Spec is what goes into an image.
type Spec struct {
	// Binary is the static meshca executable (CGO_ENABLED=0).
	Binary string
	// CABundle, when set, is installed as /etc/ssl/certs/ca-certificates.crt, where Go looks for system roots.
	CABundle string
	// Ref is the reference the archive carries (manifest.json RepoTags and the index's ref.name annotations).
	Ref Ref
	// Version, Revision and Source become org.opencontainers.image.* labels.
	Version, Revision, Source string
	// Created is every timestamp in the image (for reproducible builds, the commit time).
	Created time.Time
}

// Result describes a written image.
type Result struct {
	// Digest is the manifest's digest: what a registry reports after a push (ref@digest).
	Digest string
	// Arch is the binary's architecture (amd64, arm64...).
	Arch string
	// Size is the compressed size of the config and the layer: what a node pulls.
	Size int64
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *platform         `json:"platform,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

// ImageConfig is the part of the OCI image configuration mkimage sets.
type ImageConfig struct {
	Created      string `json:"created"`
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Config       struct {
		User         string              `json:"User"`
		Entrypoint   []string            `json:"Entrypoint"`
		Env          []string            `json:"Env,omitempty"`
		WorkingDir   string              `json:"WorkingDir"`
		ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
		Labels       map[string]string   `json:"Labels"`
	} `json:"config"`
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
	History []struct {
		Created   string `json:"created"`
		CreatedBy string `json:"created_by"`
	} `json:"history"`
}

// Build writes the image described by s to w as one tar archive and returns its digest and size.
func Build(s Spec, w io.Writer) (*Result, error) {
	arch, err := inspectBinary(s.Binary)
	if err != nil {
		return nil, err
	}
	bin, err := readOptional(s.Binary)
	if err != nil {
		return nil, fmt.Errorf("mkimage: --binary: %w", err)
	}
	bundle, err := readOptional(s.CABundle)
	if err != nil {
		return nil, fmt.Errorf("mkimage: --ca-bundle: %w", err)
	}
	created := s.Created.UTC().Truncate(time.Second)
	l, err := buildLayer(bin, bundle, created)
	if err != nil {
		return nil, err
	}

	var cfg ImageConfig
	ts := created.Format(time.RFC3339)
	cfg.Created, cfg.Architecture, cfg.OS = ts, arch, "linux"
	cfg.Config.User = fmt.Sprintf("%d:%d", nonrootUID, nonrootGID)
	cfg.Config.Entrypoint = []string{Entrypoint}
	cfg.Config.WorkingDir = "/"
	if bundle != nil {
		cfg.Config.Env = []string{"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}
	}
	cfg.Config.ExposedPorts = map[string]struct{}{"15012/tcp": {}, "15014/tcp": {}}
	cfg.Config.Labels = map[string]string{
		"org.opencontainers.image.title":    "meshca",
		"org.opencontainers.image.licenses": "Apache-2.0",
		"org.opencontainers.image.created":  ts,
		"org.opencontainers.image.version":  s.Version,
		"org.opencontainers.image.revision": s.Revision,
		"org.opencontainers.image.source":   s.Source,
	}
	cfg.RootFS.Type, cfg.RootFS.DiffIDs = "layers", []string{l.diffID}
	cfg.History = append(cfg.History, struct {
		Created   string `json:"created"`
		CreatedBy string `json:"created_by"`
	}{ts, "meshca tools/mkimage: " + Entrypoint + ", /etc/passwd, /etc/group, /tmp"})
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cfgDesc := descriptor{MediaType: mediaConfig, Digest: digest(cfgJSON), Size: int64(len(cfgJSON))}
	layerDesc := descriptor{MediaType: mediaLayer, Digest: digest(l.gz), Size: int64(len(l.gz))}

	manifest, err := json.Marshal(struct {
		SchemaVersion int               `json:"schemaVersion"`
		MediaType     string            `json:"mediaType"`
		Config        descriptor        `json:"config"`
		Layers        []descriptor      `json:"layers"`
		Annotations   map[string]string `json:"annotations"`
	}{2, mediaManifest, cfgDesc, []descriptor{layerDesc},
		map[string]string{"org.opencontainers.image.created": ts}})
	if err != nil {
		return nil, err
	}
	manDesc := descriptor{MediaType: mediaManifest, Digest: digest(manifest), Size: int64(len(manifest)),
		Platform: &platform{Architecture: arch, OS: "linux"},
		Annotations: map[string]string{
			"org.opencontainers.image.ref.name": s.Ref.Tag,
			"io.containerd.image.name":          s.Ref.String(),
		}}
	index, err := json.Marshal(struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Manifests     []descriptor `json:"manifests"`
	}{2, mediaIndex, []descriptor{manDesc}})
	if err != nil {
		return nil, err
	}
	// docker load reads manifest.json; its paths point at the same blobs the OCI layout holds.
	dockerManifest, err := json.Marshal([]struct {
		Config   string
		RepoTags []string
		Layers   []string
	}{{blobPath(cfgDesc.Digest), []string{s.Ref.String()}, []string{blobPath(layerDesc.Digest)}}})
	if err != nil {
		return nil, err
	}

	tw := tar.NewWriter(w)
	files := []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", index},
		{"manifest.json", dockerManifest},
		{"blobs/", nil},
		{"blobs/sha256/", nil},
		{blobPath(manDesc.Digest), manifest},
		{blobPath(cfgDesc.Digest), cfgJSON},
		{blobPath(layerDesc.Digest), l.gz},
	}
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: 0o644, ModTime: created, Typeflag: tar.TypeReg, Size: int64(len(f.data)),
			Format: tar.FormatPAX}
		if f.data == nil {
			h.Mode, h.Typeflag = 0o755, tar.TypeDir
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("mkimage: writing %s: %w", f.name, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("mkimage: writing %s: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("mkimage: writing the archive: %w", err)
	}
	return &Result{Digest: manDesc.Digest, Arch: arch, Size: cfgDesc.Size + layerDesc.Size}, nil
}

func blobPath(d string) string { return "blobs/sha256/" + d[len("sha256:"):] }
