// Package faults holds meshca's fault-under-load tests (issue 15): requests keep flowing while a backend is
// killed and restarted, or while the API server is down, and each test states what the callers see: how fast
// a failure is, which gRPC code it has, and how soon service resumes, without restarting meshca. The tests
// start real servers (Vault, kube-apiserver) and skip under -short.
package faults
