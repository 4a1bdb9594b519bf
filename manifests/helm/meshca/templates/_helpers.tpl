{{/* Labels of every object: the kustomize base's, Helm's, and commonLabels. */}}
{{- define "meshca.labels" -}}
app.kubernetes.io/name: meshca
app.kubernetes.io/part-of: meshca
{{ include "meshca.helmLabels" . }}
{{- end }}

{{/* Helm's labels (the kustomize build has none of these; manifests/helm_test.go drops them to compare). */}}
{{- define "meshca.helmLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The image reference: repository@digest, or repository:tag with the tag defaulting to appVersion. */}}
{{- define "meshca.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

{{/* Whether meshca reads the cacerts Secret through the API server (and so needs RBAC on it). */}}
{{- define "meshca.readsSecret" -}}
{{- if and (eq .Values.app.backend.kind "file") (eq .Values.app.backend.file.source "secret") }}true{{ end -}}
{{- end }}

{{/* meshca's configuration file (cmd/meshca/config.go), from the values; app.config is merged last. */}}
{{- define "meshca.config" -}}
{{- $ns := .Release.Namespace -}}
{{- $a := .Values.app -}}
{{- $s := $a.server -}}
{{- $issuance := dict "trustDomain" $a.tls.trustDomain "defaultTTL" $s.defaultCertificateDuration
    "minTTL" $s.minCertificateDuration "maxTTL" $s.maxCertificateDuration -}}
{{- with $a.tls.trustDomainAliases }}{{ $_ := set $issuance "trustDomainAliases" . }}{{ end -}}
{{- $dns := $a.tls.certificateDNSNames -}}
{{- if not $dns -}}
{{- $dns = list (printf "meshca.%s.svc" $ns) (printf "meshca.%s.svc.cluster.local" $ns) (printf "meshca.%s" $ns) -}}
{{- end -}}
{{- $server := dict "grpcAddr" (printf "%s:%d" $s.serving.address (int $s.serving.port))
    "httpAddr" (printf ":%d" (int $a.metrics.port)) "dnsNames" $dns "namespace" $ns
    "serviceAccount" "meshca" "servingTTL" $a.tls.certificateDuration -}}
{{- $authn := dict "issuers" $a.authn.issuers -}}
{{- if not $s.authenticators.enableClientCert }}{{ $_ := set $authn "clientCert" false }}{{ end -}}
{{- $b := $a.backend -}}
{{- $backend := dict -}}
{{- if eq $b.kind "file" -}}
{{- if eq $b.file.source "secret" -}}
{{- $backend = dict "name" "cacerts" "file" (dict "secret" (printf "%s/%s" $ns $b.file.secretName) "nextDir" "/etc/cacerts-next") -}}
{{- else -}}
{{- $backend = dict "name" "cacerts" "file" (dict "dir" "/etc/cacerts" "reloadInterval" $b.file.reloadInterval "nextDir" "/etc/cacerts-next") -}}
{{- end -}}
{{- else if eq $b.kind "vault" -}}
{{- $v := $b.vault -}}
{{- $backend = dict "name" "vault" "vault" (dict "address" $v.address "mount" $v.mount "role" $v.role
    "rootsFile" "/etc/meshca-vault/roots.pem" "timeout" $v.timeout "tls" (dict "caFile" "/etc/meshca-vault/ca.pem")
    "auth" (dict "method" "kubernetes" "role" $v.authRole "jwtFile" "/var/run/secrets/meshca/vault/token")) -}}
{{- else if eq $b.kind "stepca" -}}
{{- $v := $b.stepca -}}
{{- $backend = dict "name" "stepca" "stepca" (dict "url" $v.url "rootsFile" "/etc/meshca-stepca/roots.pem"
    "timeout" $v.timeout "jwk" (dict "provisioner" $v.provisioner
    "keyFile" "/etc/meshca-stepca-provisioner/key.json" "passwordFile" "/etc/meshca-stepca-provisioner/password")) -}}
{{- end -}}
{{- $kube := dict "clusterID" $s.clusterID -}}
{{- $nodeAccounts := list -}}
{{- range splitList "," $s.caTrustedNodeAccounts }}{{ if trim . }}{{ $nodeAccounts = append $nodeAccounts (trim .) }}{{ end }}{{ end -}}
{{- with $nodeAccounts }}{{ $_ := set $kube "trustedNodeAccounts" . }}{{ end -}}
{{- $tb := dict "signerName" "meshca.io/workload-ca" "bundleName" "roots" "leaseNamespace" $ns
    "leaseName" "meshca-trustbundle" -}}
{{- if $a.trustBundle.istioClusterTrustBundle -}}
{{- $tb = dict "istioClusterTrustBundle" true "leaseNamespace" $ns "leaseName" "meshca-trustbundle" -}}
{{- end -}}
{{- with $a.controller.configmapNamespaceSelector }}{{ $_ := set $tb "namespaceSelector" . }}{{ end -}}
{{- $crl := dict "secret" (dict "namespace" $ns "name" "meshca-revocations")
    "configMaps" (dict "leaseNamespace" $ns "leaseName" "meshca-crl") -}}
{{- $cfg := dict "issuance" $issuance "server" $server "authn" $authn "backends" (list $backend)
    "kubernetes" $kube "trustBundle" $tb "crl" $crl -}}
{{- if $a.expiryScanner.enabled }}{{ $_ := set $cfg "expiry" (dict "scan" (dict "kubernetes" (dict))) }}{{ end -}}
{{- if $a.rotation.enabled -}}
{{- $_ := set $cfg "rotation" (dict "configMap" "meshca-rotation" "leaseNamespace" $ns "leaseName" "meshca-rotation"
    "adminAddr" "127.0.0.1:15017") -}}
{{- end -}}
{{- toYaml (mergeOverwrite $cfg (deepCopy $a.config)) -}}
{{- end }}
