{{/* vim: set filetype=mustache: */}}

{{/*
The seven services of IS-Messenger, in a stable order.
*/}}
{{- define "is-messenger.serviceNames" -}}
workspaces gateway contacts conversations broadcasts workflows integrations
{{- end -}}

{{/*
Expand the name of the chart.
*/}}
{{- define "is-messenger.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Create a default fully qualified app name, truncated to 63 characters (DNS-1123 label limit).
If the release name contains the chart name it is used as the full name.
*/}}
{{- define "is-messenger.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Name of a per-service resource: <fullname>-<service>, truncated to 63 characters.
Usage: {{ include "is-messenger.componentName" (dict "service" "contacts" "context" $) }}
*/}}
{{- define "is-messenger.componentName" -}}
{{- printf "%s-%s" (include "is-messenger.fullname" .context) .service | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Chart name and version as used by the chart label.
*/}}
{{- define "is-messenger.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Standard labels. Pass the root context, optionally with a component:
{{ include "is-messenger.labels" (dict "component" "contacts" "context" $) }}
*/}}
{{- define "is-messenger.labels" -}}
{{- $ctx := .context -}}
helm.sh/chart: {{ include "is-messenger.chart" $ctx }}
app.kubernetes.io/name: {{ include "is-messenger.name" $ctx }}
app.kubernetes.io/instance: {{ $ctx.Release.Name | quote }}
app.kubernetes.io/version: {{ $ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $ctx.Release.Service }}
app.kubernetes.io/part-of: is-messenger
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- with $ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Selector labels (immutable): name + instance (+ component when given).
*/}}
{{- define "is-messenger.selectorLabels" -}}
app.kubernetes.io/name: {{ include "is-messenger.name" .context }}
app.kubernetes.io/instance: {{ .context.Release.Name | quote }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end -}}

{{/*
Common annotations block content (may be empty).
*/}}
{{- define "is-messenger.annotations" -}}
{{- with .Values.commonAnnotations }}
{{- toYaml . }}
{{- end }}
{{- end -}}

{{/*
Name of the ServiceAccount used by the service pods.
*/}}
{{- define "is-messenger.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "is-messenger.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Name of the ConfigMap with the non-secret settings.
*/}}
{{- define "is-messenger.configMapName" -}}
{{- printf "%s-config" (include "is-messenger.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Full image reference: registry/repository@digest or registry/repository:tag (tag defaults to appVersion).
*/}}
{{- define "is-messenger.image" -}}
{{- $repo := .Values.image.repository -}}
{{- if .Values.image.registry -}}
{{- $repo = printf "%s/%s" .Values.image.registry .Values.image.repository -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag | toString) -}}
{{- end -}}
{{- end -}}

{{/*
Non-secret settings as a YAML map of ISM_* variables. Used by the ConfigMap and, inlined,
by the migration hook Jobs (which run before the ConfigMap exists on a first install).
*/}}
{{- define "is-messenger.configData" -}}
{{- $root := . -}}
ISM_AMQP__EXCHANGE: {{ .Values.config.amqp.exchange | quote }}
ISM_TELEMETRY__LOG_FILTER: {{ .Values.config.telemetry.logFilter | quote }}
ISM_MODE: {{ .Values.config.mode | quote }}
ISM_TELEMETRY__LOG_FORMAT: {{ .Values.config.telemetry.logFormat | quote }}
ISM_TELEMETRY__OTLP_ENDPOINT: {{ .Values.config.telemetry.otlpEndpoint | quote }}
ISM_GATEWAY__HTTP_PORT: {{ .Values.ports.http | int64 | quote }}
ISM_GATEWAY__PUBLIC_URL: {{ .Values.config.gateway.publicUrl | quote }}
ISM_GATEWAY__BODY_LIMIT_BYTES: {{ .Values.config.gateway.bodyLimitBytes | int64 | quote }}
ISM_AUTH__TOKEN_TTL_SECONDS: {{ .Values.config.auth.tokenTtlSeconds | int64 | quote }}
ISM_SHUTDOWN__PROPAGATION_SECONDS: {{ .Values.config.shutdown.propagationSeconds | int64 | quote }}
ISM_SHUTDOWN__DRAIN_SECONDS: {{ .Values.config.shutdown.drainSeconds | int64 | quote }}
{{- range $svc := splitList " " (include "is-messenger.serviceNames" $root) }}
{{- $up := upper $svc }}
ISM_SERVICES__{{ $up }}__GRPC_PORT: {{ $root.Values.ports.grpc | int64 | quote }}
ISM_SERVICES__{{ $up }}__METRICS_PORT: {{ $root.Values.ports.metrics | int64 | quote }}
ISM_SERVICES__{{ $up }}__ENDPOINT: {{ printf "http://%s:%d" (include "is-messenger.componentName" (dict "service" $svc "context" $root)) ($root.Values.ports.grpc | int64) | quote }}
{{- end }}
{{- range $k, $v := .Values.config.extraEnv }}
{{ $k }}: {{ $v | toString | quote }}
{{- end }}
{{- end -}}

{{/*
Secret-backed env vars of one service (secretKeyRef only; the chart never creates Secrets).
Usage: {{ include "is-messenger.secretEnv" (dict "service" "gateway" "context" $) }}
*/}}
{{- define "is-messenger.secretEnv" -}}
{{- $s := .context.Values.secrets -}}
- name: ISM_DATABASE__URLS__{{ upper .service }}
  valueFrom:
    secretKeyRef:
      name: {{ $s.database.existingSecret | quote }}
      key: {{ get $s.database.keys .service | quote }}
- name: ISM_REDIS__URL
  valueFrom:
    secretKeyRef:
      name: {{ $s.redis.existingSecret | quote }}
      key: {{ $s.redis.key | quote }}
- name: ISM_AMQP__URL
  valueFrom:
    secretKeyRef:
      name: {{ $s.amqp.existingSecret | quote }}
      key: {{ $s.amqp.key | quote }}
- name: ISM_AUTH__SERVICE_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $s.serviceSecret.existingSecret | quote }}
      key: {{ $s.serviceSecret.key | quote }}
{{- if eq .service "workspaces" }}
- name: ISM_AUTH__SIGNING_KEY_PEM
  valueFrom:
    secretKeyRef:
      name: {{ $s.signingKey.existingSecret | quote }}
      key: {{ $s.signingKey.key | quote }}
- name: ISM_WORKSPACES__SIGNING_KEY_SEAL_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $s.signingKeySealKey.existingSecret | quote }}
      key: {{ $s.signingKeySealKey.key | quote }}
      optional: true
{{- end }}
{{- if eq .service "gateway" }}
- name: ISM_GATEWAY__CREDENTIALS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $s.credentialsKey.existingSecret | quote }}
      key: {{ $s.credentialsKey.key | quote }}
{{- end }}
{{- if eq .service "integrations" }}
- name: ISM_INTEGRATIONS__SECRETS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $s.integrationsKey.existingSecret | quote }}
      key: {{ $s.integrationsKey.key | quote }}
{{- end }}
{{- end -}}

{{/*
Pod-level scheduling and security shared by Deployments and migration Jobs.
*/}}
{{- define "is-messenger.podCommon" -}}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . | quote }}
{{- end }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
The /tmp emptyDir volume.
*/}}
{{- define "is-messenger.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpVolume.sizeLimit | quote }}
{{- end -}}

{{/*
Fail early on combinations that a schema cannot express.
*/}}
{{- define "is-messenger.validate" -}}
{{- $stop := add (int .Values.config.shutdown.propagationSeconds) (int .Values.config.shutdown.drainSeconds) -}}
{{- if le (int .Values.terminationGracePeriodSeconds) (int $stop) -}}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be greater than config.shutdown.propagationSeconds + drainSeconds (%v)" .Values.terminationGracePeriodSeconds $stop) -}}
{{- end -}}
{{- end -}}

{{/*
NetworkPolicy egress rule to a data store: {port, cidrs, peers}. Renders nothing (deny) when
neither CIDRs nor peers are given.
*/}}
{{- define "is-messenger.egressRule" -}}
{{- if or .cidrs .peers }}
- to:
    {{- range .cidrs }}
    - ipBlock:
        cidr: {{ . | quote }}
    {{- end }}
    {{- with .peers }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - protocol: TCP
      port: {{ .port }}
{{- end }}
{{- end -}}

{{/*
NetworkPolicy egress rule for DNS on port 53 (UDP and TCP); any destination when no peers are given.
*/}}
{{- define "is-messenger.dnsEgressRule" -}}
- ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
  {{- with .peers }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/*
The gRPC service a component serves: the name its readiness probe asks about.
*/}}
{{- define "is-messenger.grpcServiceName" -}}
{{- $names := dict "workspaces" "ism.workspaces.v1.WorkspaceService" "gateway" "ism.gateway.v1.GatewayService" "contacts" "ism.contacts.v1.ContactService" "conversations" "ism.conversations.v1.ConversationService" "broadcasts" "ism.broadcasts.v1.BroadcastService" "workflows" "ism.workflows.v1.WorkflowService" "integrations" "ism.integrations.v1.IntegrationService" -}}
{{- get $names . -}}
{{- end -}}
