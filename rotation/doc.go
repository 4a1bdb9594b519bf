// Package rotation drives a root rotation from the CA. Istio's proxies learn their trust anchors only from the
// last element of a CreateCertificate response, that is only when they renew; meshca sees every renewal, so it
// can publish the next root early, record which workloads have received it, and refuse to move on until it is
// safe. A rotation is a small state machine persisted to a file (State): idle → prepared (the next root joins
// every response's trust bundle; the old CA still signs) → activated (the operator has switched cacerts to the
// new CA; the old root stays in every bundle) → idle (the old root is withdrawn). The Tracker records, per
// identity, whether the bundle it last received holds the next root and whether its leaf chains to it; the
// gates of Advance read that record through the Progress file a running meshca writes (Controller).
package rotation
