// Package rotation drives a root rotation from the CA. Istio's proxies learn their trust anchors only from the
// last element of a CreateCertificate response, that is only when they renew; meshca sees every renewal, so it
// can publish the next root early, record which workloads have received it, and refuse to move on until it is
// safe. A rotation is a state machine (State, Apply): idle → staged (the next root validated, leaf lifetimes
// capped) → publishing (both roots in every bundle; the old CA signs) → activated (the new CA signs) → retiring
// (the old root dropped from responses, later from published bundles) → idle, with pause, resume and a one-step
// rollback, each keeping the invariant that every unexpired leaf chains to a root every holder last received.
// The state lives in a Store: a file for one meshca, a ConfigMap updated by compare-and-swap for replicas, where
// only the Lease holder changes it. The Tracker records, per identity, whether the bundle it last received holds
// the next root and whether its leaf chains to it; the Controller opens the gates from that record (and, in a
// cluster, every replica's report), advances by itself, and serves the admin API `meshca rotation` calls.
// With a CASwitch (the file backend holding the next CA in nextDir) meshca also switches the signing CA
// itself: the state's SigningRoot, set on activation and shared by every replica, picks the CA that signs.
package rotation
