// Package admintoken is the local credential of meshca's loopback admin APIs (revocation, crl.admin.addr;
// rotation, rotation.adminAddr). Loopback keeps those APIs from the workloads but not from a process that shares
// meshca's network namespace (another container of the pod, a local user on a host): at start, meshca writes a
// random token to a file only its own user may read (adminTokenFile), every loopback call must present it as a
// bearer token, and the CLI reads it from the same file. Whoever can read the file may call the API, as with a
// Unix socket's permissions.
package admintoken
