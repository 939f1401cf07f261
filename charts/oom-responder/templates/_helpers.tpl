{{/* Names, labels and the rendered service configuration. */}}

{{- define "oom-responder.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "oom-responder.fullname" -}}
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

{{- define "oom-responder.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "oom-responder.selectorLabels" -}}
app.kubernetes.io/name: {{ include "oom-responder.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "oom-responder.labels" -}}
helm.sh/chart: {{ include "oom-responder.chart" . }}
{{ include "oom-responder.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "oom-responder.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "oom-responder.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "oom-responder.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Where Secrets are mounted; the config points at these files. */}}
{{- define "oom-responder.secretsDir" -}}/etc/oom-responder/secrets{{- end }}

{{/*
The configuration file: .Values.config with the parts the chart manages filled in. Returns YAML.
*/}}
{{- define "oom-responder.config" -}}
{{- $config := deepCopy (.Values.config | default dict) }}
{{- $dir := include "oom-responder.secretsDir" . }}
{{- if include "oom-responder.webhookSecretName" . }}
{{- $auth := get $config "auth" | default dict }}
{{- $_ := set $auth "bearer_token_file" (printf "%s/webhook/%s" $dir .Values.webhook.tokenSecret.key) }}
{{- $_ := set $config "auth" $auth }}
{{- end }}
{{- if or .Values.slack.tokenSecret.name .Values.slack.webhookUrlSecret.name }}
{{- $notifiers := get $config "notifiers" | default dict }}
{{- $slack := get $notifiers "slack" | default dict }}
{{- $_ := set $slack "enabled" true }}
{{- if .Values.slack.tokenSecret.name }}
{{- $_ := set $slack "token_file" (printf "%s/slack-token/%s" $dir .Values.slack.tokenSecret.key) }}
{{- end }}
{{- if .Values.slack.webhookUrlSecret.name }}
{{- $_ := set $slack "webhook_url_file" (printf "%s/slack-webhook-url/%s" $dir .Values.slack.webhookUrlSecret.key) }}
{{- end }}
{{- $_ := set $notifiers "slack" $slack }}
{{- $_ := set $config "notifiers" $notifiers }}
{{- end }}
{{- $prometheusValues := .Values.prometheus | default dict }}
{{- $prometheusToken := (get $prometheusValues "tokenSecret" | default dict) }}
{{- if or (get $prometheusValues "url") (get $prometheusToken "name") }}
{{- $prometheus := get $config "prometheus" | default dict }}
{{- if get $prometheusValues "url" }}
{{- $_ := set $prometheus "url" (get $prometheusValues "url") }}
{{- end }}
{{- if get $prometheusToken "name" }}
{{- $_ := set $prometheus "bearer_token_file" (printf "%s/prometheus-token/%s" $dir (get $prometheusToken "key")) }}
{{- end }}
{{- $_ := set $config "prometheus" $prometheus }}
{{- end }}
{{- if ((.Values.diagnostics | default dict).heapDump | default dict).enabled }}
{{- $diagnostics := get $config "diagnostics" | default dict }}
{{- $heapDump := get $diagnostics "heap_dump" | default dict }}
{{- $_ := set $heapDump "enabled" true }}
{{- $_ := set $diagnostics "heap_dump" $heapDump }}
{{- $_ := set $config "diagnostics" $diagnostics }}
{{- end }}
{{- $kubernetes := get $config "kubernetes" | default dict }}
{{- if eq .Values.rbac.scope "namespaced" }}
{{- $_ := set $kubernetes "namespaces" .Values.rbac.namespaces }}
{{- end }}
{{- if not (hasKey $kubernetes "own_namespace") }}
{{- $_ := set $kubernetes "own_namespace" .Release.Namespace }}
{{- end }}
{{- $_ := set $config "kubernetes" $kubernetes }}
{{- $server := get $config "server" | default dict }}
{{- if not (hasKey $server "handoff_url") }}
{{- /* What is still queued at SIGTERM goes to a live replica through the Service (README: Shutdown). */}}
{{- $_ := set $server "handoff_url" (printf "http://%s.%s.svc:%v/webhook" (include "oom-responder.fullname" .) .Release.Namespace .Values.service.port) }}
{{- end }}
{{- $_ := set $config "server" $server }}
{{- toYaml $config }}
{{- end }}

{{/* The state ConfigMap's name and namespace, as the service computes them. */}}
{{- define "oom-responder.stateName" -}}
{{- $guardrails := .Values.config.guardrails | default dict }}
{{- get $guardrails "state_name" | default "oom-responder-state" }}
{{- end }}
{{- define "oom-responder.stateNamespace" -}}
{{- $guardrails := .Values.config.guardrails | default dict }}
{{- get $guardrails "state_namespace" | default .Release.Namespace }}
{{- end }}

{{/* Values the schema cannot check on its own. */}}
{{- define "oom-responder.validate" -}}
{{- $server := .Values.config.server | default dict }}
{{- $shutdown := get $server "shutdown_timeout_seconds" | default 20 }}
{{- $handoff := get $server "handoff_timeout_seconds" | default 10 }}
{{- if le (float64 .Values.terminationGracePeriodSeconds) (addf $shutdown $handoff) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be greater than config.server.shutdown_timeout_seconds (%v) plus config.server.handoff_timeout_seconds (%v): the queue must drain, and what is left be handed to a live replica, before SIGKILL" .Values.terminationGracePeriodSeconds $shutdown $handoff) }}
{{- end }}
{{- $requests := .Values.resources.requests | default dict }}
{{- $limits := .Values.resources.limits | default dict }}
{{- if or (not $limits.memory) (ne (toString $requests.memory) (toString $limits.memory)) }}
{{- fail (printf "resources.requests.memory (%v) must equal resources.limits.memory (%v)" $requests.memory $limits.memory) }}
{{- end }}
{{- if and (eq .Values.rbac.scope "namespaced") (not .Values.rbac.namespaces) }}
{{- fail "rbac.scope=namespaced needs at least one namespace in rbac.namespaces" }}
{{- end }}
{{- end }}

{{- define "oom-responder.subjects" -}}
- kind: ServiceAccount
  name: {{ include "oom-responder.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end }}

{{/*
The RBAC switches must agree with the playbooks: a playbook that checks VPAs or resizes pods in place without
the matching rule would fail with 403 in the middle of an incident. Playbooks left out of the config are the
service's defaults, which check VPAs and do not resize in place.
*/}}
{{- define "oom-responder.validatePlaybooks" -}}
{{- $config := .Values.config | default dict }}
{{- $playbooks := get $config "playbooks" }}
{{- $checksVpa := not (hasKey $config "playbooks") }}
{{- $resizes := false }}
{{- range $playbook := $playbooks | default list }}
{{- range $action := $playbook.actions | default list }}
{{- if and (kindIs "map" $action) (hasKey $action "raise_memory") }}
{{- $options := get $action "raise_memory" | default dict }}
{{- if or (not (hasKey $options "check_vpa")) (get $options "check_vpa") }}
{{- $checksVpa = true }}
{{- end }}
{{- if get $options "resize_in_place" }}
{{- $resizes = true }}
{{- end }}
{{- else if and (kindIs "string" $action) (eq $action "raise_memory") }}
{{- $checksVpa = true }}
{{- end }}
{{- end }}
{{- end }}
{{- if and .Values.rbac.create $checksVpa (not .Values.rbac.verticalPodAutoscalers) }}
{{- fail "a raise_memory playbook checks VerticalPodAutoscalers (check_vpa, on by default): set rbac.verticalPodAutoscalers=true or check_vpa: false in every raise_memory action" }}
{{- end }}
{{- if and .Values.rbac.create $resizes (not .Values.rbac.podResize) }}
{{- fail "a raise_memory playbook sets resize_in_place: set rbac.podResize=true" }}
{{- end }}
{{- end }}

{{/* The webhook token Secret's name: the existing one, or the one the chart creates. Empty: none mounted. */}}
{{- define "oom-responder.webhookSecretName" -}}
{{- if .Values.webhook.tokenSecret.create }}
{{- default (printf "%s-webhook" (include "oom-responder.fullname" .)) .Values.webhook.tokenSecret.name }}
{{- else }}
{{- .Values.webhook.tokenSecret.name }}
{{- end }}
{{- end }}

{{/*
The Secret the chart creates for the webhook token: the given token, else the one already in the cluster (kept
across upgrades), else a new random one.
*/}}
{{- define "oom-responder.webhookSecret" -}}
{{- $name := include "oom-responder.webhookSecretName" . }}
{{- $key := .Values.webhook.tokenSecret.key }}
{{- $token := .Values.webhook.tokenSecret.token }}
{{- if not $token }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $name }}
{{- if and $existing (hasKey ($existing.data | default dict) $key) }}
{{- $token = index $existing.data $key | b64dec }}
{{- else }}
{{- $token = sha256sum (printf "%s/%s/%s" (randAlphaNum 64) .Release.Name .Release.Namespace) }}
{{- end }}
{{- /* Remembered for this render: the Secret and the Deployment's checksum must see the same token. */}}
{{- $_ := set .Values.webhook.tokenSecret "token" $token }}
{{- end }}
apiVersion: v1
kind: Secret
metadata:
  name: {{ $name }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "oom-responder.labels" . | nindent 4 }}
type: Opaque
data:
  {{ $key }}: {{ $token | b64enc | quote }}
{{- end }}

{{/* The helm test pod's labels: the release's, but never the Deployment's selector labels. */}}
{{- define "oom-responder.testLabels" -}}
helm.sh/chart: {{ include "oom-responder.chart" . }}
app.kubernetes.io/name: {{ include "oom-responder.name" . }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: helm-test
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}
