// Package testproc starts, watches and stops the real servers that meshca's integration tests run against
// (Vault, step-ca, etcd, kube-apiserver): a free loopback port, a process with its output in a log file and
// the tail of that log for error messages, polling until the server is ready or has exited, and stopping it by
// its PID. It imports only the standard library, so every test harness can use it.
package testproc
