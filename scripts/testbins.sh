#!/usr/bin/env bash
# Builds (first time) every real server the integration tests use and prints shell exports for them.
# usage: eval "$(scripts/testbins.sh)"
source "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
echo "export MESHCA_PILOT_AGENT=$("$here/get-pilot-agent.sh")"
echo "export MESHCA_PILOT_DISCOVERY=$("$here/get-pilot-discovery.sh")"
echo "export MESHCA_STEPCA=$("$here/get-stepca.sh")"
echo "export MESHCA_VAULT=$("$here/get-vault.sh")"
echo "export MESHCA_PROMTOOL=$("$here/get-promtool.sh")"
k=$("$here/get-k8s.sh")
echo "export MESHCA_KUBE_APISERVER=$k/kube-apiserver MESHCA_ETCD=$k/etcd"
echo "export MESHCA_HELM=$("$here/get-helm.sh")"
echo "export MESHCA_NODE=$("$here/get-node.sh")"
echo "export MESHCA_CHROMIUM=$("$here/get-chromium.sh")"
