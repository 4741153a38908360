{{/* Chart name, truncated to 63 characters (a label value). */}}
{{- define "stnh.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Object name: the release name when it contains the chart name, else <release>-<chart>. */}}
{{- define "stnh.fullname" -}}
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

{{- define "stnh.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stnh.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object. The plain manifests carry the same ones but helm.sh/chart and managed-by. */}}
{{- define "stnh.labels" -}}
{{ include "stnh.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "stnh.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "stnh.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The seed chart's default noticeUrl: the handler's own IMDSv2 polling covers it. */}}
{{- define "stnh.seedNoticeUrl" -}}
http://169.254.169.254/latest/meta-data/spot/termination-time
{{- end }}

{{/* A setting is set unless it is null or the empty string (false and 0 are values). */}}
{{- define "stnh.isSet" -}}
{{- if and (not (kindIs "invalid" .)) (ne (toString .) "") }}true{{ end }}
{{- end }}

{{/* The Secret holding the Slack webhook URL, as "name key", or "" when Slack is off. */}}
{{- define "stnh.slackSecretRef" -}}
{{- if and .Values.slackUrl .Values.slackUrlSecret.name }}
{{- fail "set slackUrl or slackUrlSecret.name, not both" }}
{{- else if .Values.slackUrl }}
{{- printf "%s-slack slack-url" (include "stnh.fullname" .) }}
{{- else if .Values.slackUrlSecret.name }}
{{- printf "%s %s" .Values.slackUrlSecret.name (default "slack-url" .Values.slackUrlSecret.key) }}
{{- end }}
{{- end }}

{{/* The TCP port metricsAddr serves on, or "" when it serves nothing (unset, or port 0). */}}
{{- define "stnh.metricsPort" -}}
{{- $p := regexFind "[0-9]+$" (toString .Values.metricsAddr) }}
{{- if and $p (ne (toString (int $p)) "0") }}{{ int $p }}{{ end }}
{{- end }}

{{/* "NAME KEY" of the Secret holding one webhook setting: the chart's <fullname>-webhook when the value is
given in the values, else the named Secret; "" when neither. Argument: list ctx value secret key valueName. */}}
{{- define "stnh.webhookSecretRef" -}}
{{- $value := index . 1 }}{{ $sec := index . 2 }}{{ $key := index . 3 }}
{{- if and $value $sec.name }}
{{- fail (printf "set %s or %sSecret.name, not both" (index . 4) (index . 4)) }}
{{- else if $value }}
{{- printf "%s-webhook %s" (include "stnh.fullname" (index . 0)) $key }}
{{- else if $sec.name }}
{{- printf "%s %s" $sec.name (default $key $sec.key) }}
{{- end }}
{{- end }}

{{/* Environment variables for the handler's settings, in the order of the README's settings table. */}}
{{- define "stnh.settingsEnv" -}}
{{- $v := .Values }}
{{- $env := list }}
{{- if include "stnh.isSet" $v.pollInterval }}{{ $env = append $env (list "POLL_INTERVAL" $v.pollInterval) }}{{ end }}
{{- if include "stnh.isSet" $v.imdsUrl }}{{ $env = append $env (list "IMDS_URL" $v.imdsUrl) }}{{ end }}
{{- if include "stnh.isSet" $v.imdsTimeout }}{{ $env = append $env (list "IMDS_TIMEOUT" $v.imdsTimeout) }}{{ end }}
{{- if and (include "stnh.isSet" $v.noticeUrl) (ne (toString $v.noticeUrl) (include "stnh.seedNoticeUrl" .)) }}{{ $env = append $env (list "NOTICE_URL" $v.noticeUrl) }}{{ end }}
{{- if include "stnh.isSet" $v.verbose }}{{ $env = append $env (list "VERBOSE" $v.verbose) }}{{ end }}
{{- if and (include "stnh.isSet" $v.gracePeriod) (ne (toString $v.gracePeriod) "0") }}{{ $env = append $env (list "GRACE_PERIOD" $v.gracePeriod) }}{{ end }}
{{- if include "stnh.isSet" $v.drainReserve }}{{ $env = append $env (list "DRAIN_RESERVE" $v.drainReserve) }}{{ end }}
{{- if include "stnh.isSet" $v.forceDelete }}{{ $env = append $env (list "FORCE_DELETE" $v.forceDelete) }}{{ end }}
{{- if include "stnh.isSet" $v.kubeApiUrl }}{{ $env = append $env (list "KUBE_API_URL" $v.kubeApiUrl) }}{{ end }}
{{- if include "stnh.isSet" $v.rebalance }}{{ $env = append $env (list "REBALANCE" $v.rebalance) }}{{ end }}
{{- if include "stnh.isSet" $v.rebalanceTtl }}{{ $env = append $env (list "REBALANCE_TTL" $v.rebalanceTtl) }}{{ end }}
{{- if include "stnh.isSet" $v.scheduledEvents }}{{ $env = append $env (list "SCHEDULED_EVENTS" $v.scheduledEvents) }}{{ end }}
{{- if include "stnh.isSet" $v.scheduledEventLead }}{{ $env = append $env (list "SCHEDULED_EVENT_LEAD" $v.scheduledEventLead) }}{{ end }}
{{- if include "stnh.isSet" $v.asgLifecycle }}{{ $env = append $env (list "ASG_LIFECYCLE" $v.asgLifecycle) }}{{ end }}
{{- if include "stnh.isSet" $v.asgLifecycleDeadline }}{{ $env = append $env (list "ASG_LIFECYCLE_DEADLINE" $v.asgLifecycleDeadline) }}{{ end }}
{{- if eq (toString $v.detachAsg) "true" }}{{ $env = append $env (list "DETACH_ASG" "true") }}{{ end }}
{{- if include "stnh.isSet" $v.detachAsgOn }}{{ $env = append $env (list "DETACH_ASG_ON" $v.detachAsgOn) }}{{ end }}
{{- if include "stnh.isSet" $v.excludeFromLoadBalancers }}{{ $env = append $env (list "EXCLUDE_FROM_LOAD_BALANCERS" $v.excludeFromLoadBalancers) }}{{ end }}
{{- if include "stnh.isSet" $v.evictionDelay }}{{ $env = append $env (list "EVICTION_DELAY" $v.evictionDelay) }}{{ end }}
{{- if include "stnh.isSet" $v.evictionOrder }}{{ $env = append $env (list "EVICTION_ORDER" $v.evictionOrder) }}{{ end }}
{{- if include "stnh.isSet" $v.criticalPriority }}{{ $env = append $env (list "CRITICAL_PRIORITY" (int64 $v.criticalPriority)) }}{{ end }}
{{- if include "stnh.isSet" $v.podSelector }}{{ $env = append $env (list "POD_SELECTOR" $v.podSelector) }}{{ end }}
{{- $env = append $env (list "SURGE_BLOCKED" (ternary "budgeted" (eq (toString $v.surgeBlocked) "true") (eq (toString $v.surgeBlocked) "budgeted"))) }}
{{- if include "stnh.isSet" $v.uptimeFile }}{{ $env = append $env (list "UPTIME_FILE" $v.uptimeFile) }}{{ end }}
{{- if include "stnh.isSet" $v.dryRun }}{{ $env = append $env (list "DRY_RUN" $v.dryRun) }}{{ end }}
{{- if include "stnh.isSet" $v.metricsAddr }}{{ $env = append $env (list "METRICS_ADDR" $v.metricsAddr) }}{{ end }}
{{- if include "stnh.isSet" $v.healthLoopTimeout }}{{ $env = append $env (list "HEALTH_LOOP_TIMEOUT" $v.healthLoopTimeout) }}{{ end }}
{{- if include "stnh.isSet" $v.healthMetadataTimeout }}{{ $env = append $env (list "HEALTH_METADATA_TIMEOUT" $v.healthMetadataTimeout) }}{{ end }}
{{- if include "stnh.isSet" $v.cloud }}{{ $env = append $env (list "CLOUD" $v.cloud) }}{{ end }}
{{- if include "stnh.isSet" $v.gcpMetadataUrl }}{{ $env = append $env (list "GCP_METADATA_URL" $v.gcpMetadataUrl) }}{{ end }}
{{- if include "stnh.isSet" $v.azureMetadataUrl }}{{ $env = append $env (list "AZURE_METADATA_URL" $v.azureMetadataUrl) }}{{ end }}
{{- if include "stnh.isSet" $v.alibabaMetadataUrl }}{{ $env = append $env (list "ALIBABA_METADATA_URL" $v.alibabaMetadataUrl) }}{{ end }}
{{- if include "stnh.isSet" $v.gcpPreemptionDeadline }}{{ $env = append $env (list "GCP_PREEMPTION_DEADLINE" $v.gcpPreemptionDeadline) }}{{ end }}
{{- if include "stnh.isSet" $v.gcpMigrate }}{{ $env = append $env (list "GCP_MIGRATE" $v.gcpMigrate) }}{{ end }}
{{- if include "stnh.isSet" $v.azureApprove }}{{ $env = append $env (list "AZURE_APPROVE" $v.azureApprove) }}{{ end }}
{{- if include "stnh.isSet" $v.azureFreeze }}{{ $env = append $env (list "AZURE_FREEZE" $v.azureFreeze) }}{{ end }}
{{- if include "stnh.isSet" $v.webhookEvents }}{{ $env = append $env (list "WEBHOOK_EVENTS" $v.webhookEvents) }}{{ end }}
{{- if include "stnh.isSet" $v.webhookTemplateFile }}{{ $env = append $env (list "WEBHOOK_TEMPLATE_FILE" $v.webhookTemplateFile) }}{{ end }}
{{- if include "stnh.isSet" $v.webhookProxy }}{{ $env = append $env (list "WEBHOOK_PROXY" $v.webhookProxy) }}{{ end }}
{{- if include "stnh.isSet" $v.httpsProxy }}{{ $env = append $env (list "HTTPS_PROXY" $v.httpsProxy) }}{{ end }}
{{- if include "stnh.isSet" $v.noProxy }}{{ $env = append $env (list "NO_PROXY" $v.noProxy) }}{{ end }}
{{- if include "stnh.isSet" $v.events }}{{ $env = append $env (list "EVENTS" $v.events) }}{{ end }}
{{- if include "stnh.isSet" $v.nodeCondition }}{{ $env = append $env (list "NODE_CONDITION" $v.nodeCondition) }}{{ end }}
{{- if include "stnh.isSet" $v.logFormat }}{{ $env = append $env (list "LOG_FORMAT" $v.logFormat) }}{{ end }}
{{- if include "stnh.isSet" $v.logLevel }}{{ $env = append $env (list "LOG_LEVEL" $v.logLevel) }}{{ end }}
{{- range $env }}
- name: {{ index . 0 }}
  value: {{ index . 1 | toString | quote }}
{{- end }}
{{- with include "stnh.slackSecretRef" . }}
{{- $ref := splitList " " . }}
- name: SLACK_URL
  valueFrom:
    secretKeyRef:
      name: {{ index $ref 0 }}
      key: {{ index $ref 1 }}
{{- end }}
{{- range $s := list (list "WEBHOOK_URL" $v.webhookUrl $v.webhookUrlSecret "webhook-url" "webhookUrl") (list "WEBHOOK_HEADERS" $v.webhookHeaders $v.webhookHeadersSecret "webhook-headers" "webhookHeaders") (list "WEBHOOK_TEMPLATE" $v.webhookTemplate $v.webhookTemplateSecret "webhook-template" "webhookTemplate") }}
{{- with include "stnh.webhookSecretRef" (list $ (index $s 1) (index $s 2) (index $s 3) (index $s 4)) }}
{{- $ref := splitList " " . }}
- name: {{ index $s 0 }}
  valueFrom:
    secretKeyRef:
      name: {{ index $ref 0 }}
      key: {{ index $ref 1 }}
{{- end }}
{{- end }}
{{- if include "stnh.isSet" $v.slackChannel }}
- name: SLACK_CHANNEL
  value: {{ $v.slackChannel | toString | quote }}
{{- end }}
{{- if include "stnh.isSet" $v.clusterName }}
- name: CLUSTER
  value: {{ $v.clusterName | toString | quote }}
{{- end }}
{{- if not $v.enableLogspout }}
- name: LOGSPOUT
  value: "ignore"
{{- end }}
{{- end }}
