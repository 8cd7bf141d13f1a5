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

{{/* The host names the WebSocket Ingress routes: websocket.ingress.hosts, else the XMPP domain. */}}
{{- define "adhocd.websocketHosts" -}}
{{- .Values.websocket.ingress.hosts | default (list .Values.domain) | toJson -}}
{{- end -}}

{{/*
The URL XEP-0156 discovery advertises (config.yaml: websocket.public_url):
websocket.publicURL, else with the Ingress on the first Ingress host (unless a
wildcard) with wss:// when a tls entry covers it (or names no hosts), else
empty (adhocd derives it from each request).
*/}}
{{- define "adhocd.websocketPublicURL" -}}
{{- $ws := .Values.websocket -}}
{{- if $ws.publicURL -}}
{{- $ws.publicURL -}}
{{- else if and $ws.enabled $ws.ingress.enabled (not (contains "*" (first (include "adhocd.websocketHosts" . | fromJsonArray)))) -}}
{{- $host := first (include "adhocd.websocketHosts" . | fromJsonArray) -}}
{{- $scheme := "ws" -}}
{{- range $ws.ingress.tls -}}
{{- if or (not .hosts) (has $host .hosts) -}}
{{- $scheme = "wss" -}}
{{- end -}}
{{- end -}}
{{- printf "%s://%s%s" $scheme $host $ws.path -}}
{{- end -}}
{{- end -}}
