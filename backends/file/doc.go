// Package file is meshca's local signing backend. It reads a CA in Istio's cacerts layout (the files of the
// istio-system/cacerts Secret), signs with the key it holds, and reloads the files when they change.
//
//	ca-cert.pem     the signing CA certificate (an intermediate, or the root itself)
//	ca-key.pem      its private key (PKCS #8, PKCS #1 or SEC 1; RSA, ECDSA or Ed25519)
//	cert-chain.pem  the chain from ca-cert.pem towards the root (may include ca-cert.pem and the root)
//	root-cert.pem   the trust anchor(s); several during a root rotation
//	ca-crl.pem      optional: the CA's current CRL
//
// A new set of files is checked as a whole (key matches certificate, certificate is a CA, chain verifies to a
// root, not expired) before it replaces the active one; a broken set is refused and the old CA stays active.
// Mounted Kubernetes Secrets change by an atomic symlink swap, which the content-hash poll sees like any edit.
//
// With Config.Secret the backend reads the same keys from the Secret itself (e.g. istio-system/cacerts)
// through an informer restricted to that one object (a metadata.name field selector, so RBAC can grant get,
// list and watch on that name only). A change takes effect as soon as the watch event arrives instead of after
// the kubelet's volume sync; a broken update or a deleted Secret is refused in the same way.
//
// With Config.NextDir the backend also holds the next CA of a root rotation, read and reloaded in the same way
// (a missing or empty directory is none), and signs with whichever of its two CAs chains to
// Config.SigningRoot, the rotation state's signing root; with neither it refuses to sign rather than sign with
// the wrong CA, and a reload that would take that CA away is refused.
package file
