{{- define "adhocd.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "adhocd.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "adhocd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "adhocd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "adhocd.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{ include "adhocd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "adhocd.adminSecret" -}}
{{- if .Values.adminBootstrap.existingSecret -}}
{{- .Values.adminBootstrap.existingSecret -}}
{{- else -}}
{{- printf "%s-admin" (include "adhocd.fullname" .) -}}
{{- end -}}
{{- end -}}
