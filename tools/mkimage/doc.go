// Command mkimage builds meshca's container image without a container runtime: one layer holding the static
// meshca binary, passwd and group entries for the nonroot user (uid and gid 65532), an optional CA bundle and
// an empty /tmp, and nothing else (no shell, no package manager). It writes one tar file that is both an OCI
// image layout (oci-archive, for skopeo and containerd) and a docker save archive (manifest.json, for
// docker load, podman load and crane push).
//
// The output is reproducible: every timestamp comes from --created (make image passes the commit time),
// entries are written in a fixed order with fixed owners, and gzip headers carry no name or time, so the same
// binary gives the same image digest.
//
//	mkimage --binary bin/image/meshca --ref ghcr.io/meshca/meshca:v0.1.0 --out bin/meshca-image.tar
//
// It uses only the standard library, so meshca's go.mod gains no image-building dependency.
package main
