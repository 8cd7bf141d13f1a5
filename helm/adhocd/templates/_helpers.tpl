{{/* The chart's name: nameOverride, else the chart name. */}}
{{- define "adhocd.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The base name of every object: fullnameOverride, else <release>-<name>, or the
release name alone when it already contains the name.
*/}}
{{- define "adhocd.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "adhocd.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
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

{{/* The Secret holding the administrator's password. */}}
{{- define "adhocd.adminSecret" -}}
{{- if .Values.adminBootstrap.existingSecret -}}
{{- .Values.adminBootstrap.existingSecret -}}
{{- else -}}
{{- printf "%s-admin" (include "adhocd.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The key of the password in that Secret. */}}
{{- define "adhocd.adminSecretKey" -}}
{{- if .Values.adminBootstrap.existingSecret -}}
{{- .Values.adminBootstrap.existingSecretKey -}}
{{- else -}}
password
{{- end -}}
{{- end -}}

{{/*
The bootstrapped administrator's JID: adminBootstrap.jid, else admin@<domain>.
adhocd refuses to start (not on this server's domain) with a JID of another
domain, which JSON schema cannot compare with domain: the render fails here.
*/}}
{{- define "adhocd.adminJID" -}}
{{- $jid := .Values.adminBootstrap.jid | default (printf "admin@%s" .Values.domain) -}}
{{- $parts := splitList "@" $jid -}}
{{- if ne (lower (last $parts)) (lower .Values.domain) -}}
{{- fail (printf "adminBootstrap.jid %q is not on the server's domain %q: adhocd would refuse to start (not on this server's domain); use <user>@%s, or leave adminBootstrap.jid empty for admin@%s" $jid .Values.domain .Values.domain .Values.domain) -}}
{{- end -}}
{{- $jid -}}
{{- end -}}

{{/* The pod's ServiceAccount. */}}
{{- define "adhocd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "adhocd.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* The image of adhocd (and of adhocctl in the test pod). */}}
{{- define "adhocd.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/*
A probe on the metrics port: the path, then enabled's sibling timing fields
of probes.<name>. Called with (list $ "<name>" "<path>").
*/}}
{{- define "adhocd.probe" -}}
{{- $root := index . 0 -}}
{{- $p := index $root.Values.probes (index . 1) -}}
httpGet:
  path: {{ index . 2 }}
  port: metrics
{{- range $k := list "initialDelaySeconds" "periodSeconds" "timeoutSeconds" "failureThreshold" "successThreshold" }}
{{- if hasKey $p $k }}
{{ $k }}: {{ int (index $p $k) }}
{{- end }}
{{- end }}
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
