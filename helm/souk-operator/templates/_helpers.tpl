{{- define "souk-operator.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "souk-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "souk-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "souk-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "souk-operator.labels" -}}
{{ include "souk-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* ClusterRole only when asked to manage every namespace; otherwise a Role in the one it watches. */}}
{{- define "souk-operator.roleKind" -}}
{{- if .Values.clusterWide -}}ClusterRole{{- else -}}Role{{- end -}}
{{- end -}}

{{/* The namespace whose Shops the operator manages (unless clusterWide): watchNamespace, else the release's. */}}
{{- define "souk-operator.watchNamespace" -}}
{{- if and .Values.clusterWide .Values.watchNamespace -}}
{{- fail "set either clusterWide or watchNamespace, not both" -}}
{{- end -}}
{{- .Values.watchNamespace | default .Release.Namespace -}}
{{- end -}}
