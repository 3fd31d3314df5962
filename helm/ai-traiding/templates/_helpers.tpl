{{/* Names and labels shared by every object of the chart. */}}

{{- define "ai-traiding.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ai-traiding.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "ai-traiding.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "ai-traiding.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ai-traiding.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ai-traiding.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ai-traiding.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "ai-traiding.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ai-traiding
{{- end -}}

{{- define "ai-traiding.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ai-traiding.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "ai-traiding.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The namespaces the operator serves (empty for cluster scope). */}}
{{- define "ai-traiding.watchNamespaces" -}}
{{- if eq .Values.watch.scope "namespace" -}}
{{- list .Release.Namespace | toJson -}}
{{- else if eq .Values.watch.scope "namespaces" -}}
{{- if not .Values.watch.namespaces -}}
{{- fail "watch.namespaces must list at least one namespace when watch.scope is namespaces" -}}
{{- end -}}
{{- .Values.watch.namespaces | uniq | toJson -}}
{{- else -}}
{{- list | toJson -}}
{{- end -}}
{{- end -}}

{{- define "ai-traiding.simulatorName" -}}
{{- printf "%s-simulator" (include "ai-traiding.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The simulators runs may name, as JSON (TRAIDING_SIMULATORS): the chart's own is `default`. */}}
{{- define "ai-traiding.simulators" -}}
{{- $simulators := dict -}}
{{- if .Values.simulator.enabled -}}
{{- $_ := set $simulators "default" (printf "http://%s.%s.svc:%d" (include "ai-traiding.simulatorName" .) .Release.Namespace (int .Values.simulator.port)) -}}
{{- end -}}
{{- merge (deepCopy .Values.operator.simulators) $simulators | toJson -}}
{{- end -}}

{{/* Who writes runs' status: the operator's ServiceAccount (and any extra operator identities), as JSON. */}}
{{- define "ai-traiding.operatorUsers" -}}
{{- $account := printf "system:serviceaccount:%s:%s" .Release.Namespace (include "ai-traiding.serviceAccountName" .) -}}
{{- concat (list $account) .Values.admissionPolicy.extraOperatorUsers | uniq | toJson -}}
{{- end -}}

{{/* Whether the Prometheus Operator's objects are rendered. */}}
{{- define "ai-traiding.monitoring" -}}
{{- if and .Values.monitoring.enabled (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1") -}}true{{- end -}}
{{- end -}}

{{/* The container securityContext every container of the chart runs with. */}}
{{- define "ai-traiding.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "ai-traiding.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}
