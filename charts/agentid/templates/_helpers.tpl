{{/*
Names, labels, images, paths and the checks every render runs. The paths are
constants shared by several containers: the chart tests check that the
containers that must agree on them (spire-server and agentid-server on both
sockets, the init containers and SPIRE on the plugin binaries) do.
*/}}

{{- define "agentid.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "agentid.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* agentid.component: "<fullname>-<component>", e.g. agentid-server. */}}
{{- define "agentid.component" -}}
{{- printf "%s-%s" (include "agentid.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "agentid.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: agentid
{{ include "agentid.selectorLabels" . }}
{{- end }}

{{- define "agentid.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agentid.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* agentid.image: one of the agentid images by its key in .Values.images. */}}
{{- define "agentid.image" -}}
{{- $images := .root.Values.images }}
{{- printf "%s/%s:%s" $images.registry (index $images .name) (default .root.Chart.AppVersion $images.tag) }}
{{- end }}

{{- define "agentid.spireImage" -}}
{{- printf "%s:%s" .repository .tag }}
{{- end }}

{{/* Paths shared between containers. */}}
{{- define "agentid.path.localSocketDir" -}}/run/agentid{{- end }}
{{- define "agentid.path.localSocket" -}}/run/agentid/agentid.sock{{- end }}
{{- define "agentid.path.configDir" -}}/etc/agentid{{- end }}
{{- define "agentid.path.dataDir" -}}/var/lib/agentid{{- end }}
{{- define "agentid.path.pluginDir" -}}/opt/agentid/plugins{{- end }}
{{- define "agentid.path.signingKeysDir" -}}/etc/agentid/signing-keys{{- end }}
{{- define "agentid.path.agentSocketDir" -}}/run/spire/agent-sockets{{- end }}
{{- define "agentid.path.agentSocket" -}}/run/spire/agent-sockets/spire-agent.sock{{- end }}
{{- define "agentid.path.adminSocketDir" -}}
{{- if eq .Values.mode "existingSpire" }}{{ .Values.existingSpire.adminSocketDir }}{{ else }}/run/spire/server-sockets{{ end }}
{{- end }}
{{- define "agentid.path.adminSocket" -}}
{{- printf "%s/api.sock" (include "agentid.path.adminSocketDir" .) }}
{{- end }}

{{- define "agentid.serverID" -}}
{{- default (printf "spiffe://%s/agentid-server" .Values.trustDomain) .Values.server.serverID }}
{{- end }}

{{- define "agentid.nodeAlias" -}}
{{- default (printf "spiffe://%s/k8s-cluster/%s/nodes" .Values.trustDomain .Values.clusterName) .Values.nodeAlias.spiffeID }}
{{- end }}

{{- define "agentid.jwtIssuer" -}}
{{- if .Values.spireServer.jwtIssuer }}{{ .Values.spireServer.jwtIssuer }}
{{- else if .Values.oidcDiscovery.enabled }}{{ printf "https://oidc-discovery.%s" .Values.trustDomain }}
{{- end }}
{{- end }}

{{- define "agentid.oidcDomains" -}}
{{- if .Values.oidcDiscovery.domains }}{{ toJson .Values.oidcDiscovery.domains }}
{{- else }}{{ list (printf "oidc-discovery.%s" .Values.trustDomain) | toJson }}
{{- end }}
{{- end }}

{{- define "agentid.extauthzID" -}}
{{- default (printf "spiffe://%s/ns/%s/sa/%s" .Values.trustDomain .Release.Namespace (include "agentid.component" (dict "root" . "component" "extauthz"))) .Values.extauthz.spiffeID }}
{{- end }}

{{/*
agentid.checksum: the pinned sha256 of a plugin ("composer" or "attestor"):
the value's override, else plugin-checksums.yaml for plugins.arch, which
charts/images/checksums.sh writes from the build the images are made of.
*/}}
{{- define "agentid.checksum" -}}
{{- $p := index .root.Values.plugins .plugin }}
{{- if $p.checksum }}{{ $p.checksum }}
{{- else }}
{{- $sums := .root.Files.Get "plugin-checksums.yaml" | fromYaml }}
{{- $arch := index $sums .root.Values.plugins.arch | default dict }}
{{- $sum := index $arch (printf "agentid-%s" .plugin) | default "" }}
{{- if not $sum }}
{{- fail (printf "plugins.%s.checksum: no checksum for arch %s in plugin-checksums.yaml; run `make checksums` or set the value" .plugin .root.Values.plugins.arch) }}
{{- end }}
{{- $sum }}
{{- end }}
{{- end }}

{{/*
agentid.checks: validation that the schema cannot express. Strict mode fails
on the placeholders a production install must replace.
*/}}
{{- define "agentid.checks" -}}
{{- if .Values.strict }}
{{- if eq .Values.trustDomain "example.org" }}
{{- fail "strict: trustDomain is the example trust domain example.org; set your own" }}
{{- end }}
{{- if eq .Values.clusterName "example-cluster" }}
{{- fail "strict: clusterName is the example example-cluster; set your cluster's name" }}
{{- end }}
{{- range .Values.server.oidc.issuers }}
{{- if eq .url "https://idp.example.com" }}
{{- fail "strict: server.oidc.issuers has the example issuer https://idp.example.com; set your IdP" }}
{{- end }}
{{- end }}
{{- if and (eq .Values.mode "allInOne") (eq .Values.spireServer.caSubject.commonName "example.org") }}
{{- fail "strict: spireServer.caSubject.commonName is the example example.org; set your CA subject" }}
{{- end }}
{{- end }}
{{- if and .Values.extauthz.enabled (not .Values.extauthz.audiences) }}
{{- fail "extauthz.audiences: at least one audience is required when extauthz.enabled" }}
{{- end }}
{{- if and .Values.extauthz.enabled (not .Values.extauthz.rules) }}
{{- fail "extauthz.rules: at least one rule is required when extauthz.enabled" }}
{{- end }}
{{- with .Values.extauthz }}
{{- $mtls := or .tls.clientIDs .tls.clientTrustDomains }}
{{- if and .enabled (not $mtls) (not .istioSidecar) }}
{{- fail "extauthz.tls: set tls.clientIDs or tls.clientTrustDomains (mTLS), or istioSidecar: true (the mesh's STRICT mTLS); CheckRequests carry users' tokens and must not cross the pod network in plaintext" }}
{{- end }}
{{- if and .enabled $mtls .istioSidecar }}
{{- fail "extauthz.tls and extauthz.istioSidecar exclude each other: the sidecar would terminate the mTLS the server expects" }}
{{- end }}
{{- end }}
{{- if and (eq .Values.mode "existingSpire") .Values.oidcDiscovery.enabled }}
{{- fail "oidcDiscovery.enabled: only in mode allInOne; the hardened charts run their own (spiffe-oidc-discovery-provider)" }}
{{- end }}
{{- end }}

{{/* Pod-level security context of every pod but spire-agent's. */}}
{{- define "agentid.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurity.runAsUser }}
runAsGroup: {{ .Values.podSecurity.runAsGroup }}
fsGroup: {{ .Values.podSecurity.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Container security context of every container but spire-agent's. */}}
{{- define "agentid.securityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurity.runAsUser }}
runAsGroup: {{ .Values.podSecurity.runAsGroup }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "agentid.pullSecrets" -}}
{{- with .Values.images.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/*
agentid.serverConfig: agentid-server's configuration file (pkg/server/config),
built as a dict and written with toYaml so that every value is quoted
correctly. The chart tests run it through config.Parse.
*/}}
{{- define "agentid.serverConfig" -}}
{{- $v := .Values }}
{{- $issuers := list }}
{{- range $v.server.oidc.issuers }}
{{- $issuers = append $issuers (dict "url" .url "audiences" .audiences "groups_claim" (default "groups" .groupsClaim) "require_verified_email" (default false .requireVerifiedEmail)) }}
{{- end }}
{{- $rules := list }}
{{- range $v.server.policy.rules }}
{{- $r := dict "name" .name "when" .when "scopes" .scopes "max_ttl" .maxTTL }}
{{- if .maxDepth }}{{ $_ := set $r "max_depth" .maxDepth }}{{ end }}
{{- if .callers }}{{ $_ := set $r "callers" .callers }}{{ end }}
{{- $rules = append $rules $r }}
{{- end }}
{{- $parent := default (include "agentid.nodeAlias" .) $v.server.agentDefaults.parentID }}
{{- $agents := list }}
{{- range $v.server.agents }}
{{- $a := dict "name" .name "spiffe_id" (default (printf "spiffe://%s/agent/%s" $v.trustDomain .name) .spiffeID) "parent_id" (default $parent .parentID) "selectors" .selectors "scope_ceiling" .scopeCeiling "x509_svid_ttl" (default $v.server.agentDefaults.x509SVIDTTL .x509SVIDTTL) "jwt_svid_ttl" (default $v.server.agentDefaults.jwtSVIDTTL .jwtSVIDTTL) }}
{{- if .subAgents }}{{ $_ := set $a "sub_agents" .subAgents }}{{ end }}
{{- $agents = append $agents $a }}
{{- end }}
{{- $verifiers := $v.server.access.verifiers }}
{{- if $v.extauthz.enabled }}{{ $verifiers = append $verifiers (include "agentid.extauthzID" .) | uniq }}{{ end }}
{{- $cfg := dict
  "trust_domain" $v.trustDomain
  "store" (dict "path" (printf "%s/agentid.db" (include "agentid.path.dataDir" .)))
  "spire" (dict "admin_socket" (include "agentid.path.adminSocket" .) "server_id" (include "agentid.serverID" .) "entry_prefix" $v.server.entryPrefix "selector_type" $v.plugins.attestor.name "reconcile_interval" $v.server.reconcileInterval)
  "listen" (dict "grpc" (printf "0.0.0.0:%d" (int $v.server.grpcPort)) "local_socket" (include "agentid.path.localSocket" .) "http" (printf "0.0.0.0:%d" (int $v.server.httpPort)))
  "oidc" (dict "issuers" $issuers)
  "policy" (dict "rules" $rules)
  "agents" $agents
  "access" (dict "verifiers" $verifiers "admins" $v.server.access.admins "audit_readers" $v.server.access.auditReaders "user_clients" $v.server.access.userClients)
  "log" (dict "level" $v.server.logLevel "format" $v.server.logFormat)
}}
{{- toYaml $cfg }}
{{- end }}

{{/* agentid.composerData: the composer's plugin_data, as HCL. */}}
{{- define "agentid.composerData" -}}
agentid_socket_path = {{ include "agentid.path.localSocket" . | quote }}
{{- with .Values.plugins.composer.markerPrefix }}
marker_prefix = {{ . | quote }}
{{- end }}
max_staleness = {{ .Values.plugins.composer.maxStaleness | quote }}
audit_queue_size = {{ int .Values.plugins.composer.auditQueueSize }}
{{- end }}

{{/* agentid.attestorData: the attestor's plugin_data, as HCL. */}}
{{- define "agentid.attestorData" -}}
{{- $a := .Values.plugins.attestor -}}
default_manifest_path = {{ $a.defaultManifestPath | quote }}
max_manifest_size = {{ int $a.maxManifestSize }}
max_exe_size = {{ int64 $a.maxExeSize }}
{{- if $a.signingKeys }}
signing_keys = {
{{- range $id, $_ := $a.signingKeys }}
  {{ $id | quote }} = {{ printf "%s/%s.pem" (include "agentid.path.signingKeysDir" $) $id | quote }}
{{- end }}
}
{{- end }}
{{- end }}

{{/* agentid.agentServiceAccount: spire-agent's ServiceAccount name. */}}
{{- define "agentid.agentServiceAccount" -}}
{{- include "agentid.component" (dict "root" . "component" "spire-agent") }}
{{- end }}

{{- define "agentid.workloadAPIVolume" -}}
- name: spire-agent-socket
{{- if .Values.workloadAPI.csiDriver }}
  csi:
    driver: {{ .Values.workloadAPI.csiDriver }}
    readOnly: true
{{- else }}
  hostPath:
    path: {{ .Values.spireAgent.socketHostDir }}
    type: Directory
{{- end }}
{{- end }}
