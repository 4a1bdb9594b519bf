package loadtest

import (
	"crypto/rand"
	"fmt"
	"hash/crc32"

	"github.com/meshca/meshca/internal/devtoken"
)

// MaxPods bounds the simulated pods of a run (Config.PodsPerIdentity): twice meshca's default
// rotation.maxIdentities, so that a run can fill its tracker past the cap.
const MaxPods = 200_000

// podsPerNode is how many simulated pods share a node claim.
const podsPerNode = 100

// workloads is the number of simulated workloads: one per identity, or PodsPerIdentity pods each.
func (c Config) workloads() int {
	return c.Namespaces * c.ServiceAccounts * max(c.PodsPerIdentity, 1)
}

// podsOf returns the claims of identity n's tokens (base): base itself without PodsPerIdentity, else one per
// pod, with the pod and node claims of a bound token. Pods are named like a Deployment's,
// <sa>-<template hash>-<index>, so that names share a prefix as a ReplicaSet's do; each has a random UUID and
// podsPerNode pods share a node, pods of one identity spread over the nodes.
func (c Config) podsOf(base devtoken.Claims, n int) ([]devtoken.Claims, error) {
	if c.PodsPerIdentity == 0 {
		return []devtoken.Claims{base}, nil
	}
	total := c.workloads()
	nodes := (total + podsPerNode - 1) / podsPerNode
	hash := crc32.ChecksumIEEE([]byte(base.Namespace + "/" + base.ServiceAccount))
	out := make([]devtoken.Claims, c.PodsPerIdentity)
	for p := range out {
		uid, err := uuid()
		if err != nil {
			return nil, fmt.Errorf("loadtest: a pod UID: %w", err)
		}
		cl := base
		cl.PodName = fmt.Sprintf("%s-%08x-%05d", base.ServiceAccount, hash, p)
		cl.PodUID = uid
		cl.NodeName = fmt.Sprintf("%s-node-%d", c.NamespacePrefix, (p*(total/c.PodsPerIdentity)+n)%nodes)
		out[p] = cl
	}
	return out, nil
}

// uuid returns a random (version 4) UUID, as Kubernetes gives pods.
func uuid() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}
