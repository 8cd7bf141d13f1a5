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

{{/* "true" when the upload service's files have a volume of their own, at /uploads; else empty. */}}
{{- define "adhocd.uploadVolume" -}}
{{- if and .Values.httpUpload.enabled .Values.httpUpload.persistence.enabled -}}
true
{{- end -}}
{{- end -}}

{{/* The upload service's domain: httpUpload.domain, else upload.<domain>. */}}
{{- define "adhocd.uploadDomain" -}}
{{- .Values.httpUpload.domain | default (printf "upload.%s" (lower .Values.domain)) -}}
{{- end -}}

{{/* The host names the upload Ingress routes: httpUpload.ingress.hosts, else the service domain. */}}
{{- define "adhocd.uploadHosts" -}}
{{- .Values.httpUpload.ingress.hosts | default (list (include "adhocd.uploadDomain" .)) | toJson -}}
{{- end -}}

{{/*
The base of the slots' URLs (config.yaml: http_upload.public_url):
httpUpload.publicURL, else with the Ingress on the first Ingress host
(unless a wildcard) with https:// when a tls entry covers it (or names no
hosts), else empty (adhocd's default: the service domain and the port).
*/}}
{{- define "adhocd.uploadPublicURL" -}}
{{- $up := .Values.httpUpload -}}
{{- if $up.publicURL -}}
{{- $up.publicURL -}}
{{- else if and $up.enabled $up.ingress.enabled (not (contains "*" (first (include "adhocd.uploadHosts" . | fromJsonArray)))) -}}
{{- $host := first (include "adhocd.uploadHosts" . | fromJsonArray) -}}
{{- $scheme := "http" -}}
{{- range $up.ingress.tls -}}
{{- if or (not .hosts) (has $host .hosts) -}}
{{- $scheme = "https" -}}
{{- end -}}
{{- end -}}
{{- printf "%s://%s/" $scheme $host -}}
{{- end -}}
{{- end -}}

{{/*
"true" when the pods form a cluster (config.yaml: cluster.redis): Redis is
named (redis.addr or redis.sentinel.master) on the postgres backend; else
empty. adhocd refuses Redis on bolt, and so does adhocd.validate.
*/}}
{{- define "adhocd.clustered" -}}
{{- if and (eq .Values.storage.backend "postgres") (or .Values.redis.addr .Values.redis.sentinel.master) -}}
true
{{- end -}}
{{- end -}}

{{/* The Deployment's default pod anti-affinity: preferably one replica per node. */}}
{{- define "adhocd.podAntiAffinity" -}}
preferredDuringSchedulingIgnoredDuringExecution:
  - weight: 100
    podAffinityTerm:
      topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- include "adhocd.selectorLabels" . | nindent 10 }}
{{- end -}}

{{/*
Seconds the preStop hook sleeps: lifecycle.preStopSleepSeconds on the
Deployment; the StatefulSet's single replica has no other replica to send
clients to, and no hook.
*/}}
{{- define "adhocd.preStopSeconds" -}}
{{- ternary (int .Values.lifecycle.preStopSleepSeconds) 0 (eq .Values.storage.backend "postgres") -}}
{{- end -}}

{{/*
The seconds of config.yaml's shutdown.drain: shutdown.drainSeconds, else on
the Deployment what the grace period leaves after the preStop hook and
adhocd.stopMarginSeconds, else (the StatefulSet) 0: every connection
closed at once.
*/}}
{{- define "adhocd.drainSeconds" -}}
{{- $d := .Values.shutdown.drainSeconds -}}
{{- if not (kindIs "invalid" $d) -}}
{{- int $d -}}
{{- else if eq .Values.storage.backend "postgres" -}}
{{- sub (sub (int .Values.terminationGracePeriodSeconds) (int (include "adhocd.preStopSeconds" .))) (int (include "adhocd.stopMarginSeconds" .)) -}}
{{- else -}}
0
{{- end -}}
{{- end -}}

{{/*
Seconds of the grace period kept after the drain: the last connections'
system-shutdown and the store's close happen then, before the kubelet's
SIGKILL.
*/}}
{{- define "adhocd.stopMarginSeconds" -}}
5
{{- end -}}

{{/*
Checks across values that JSON schema cannot make, or cannot word: each
fails the render with what to change, rather than rendering pods that
adhocd refuses, that lose data or that serve different certificates.
Included once, by configmap.yaml.
*/}}
{{- define "adhocd.validate" -}}
{{- $v := .Values -}}
{{- $replicas := int $v.replicaCount -}}
{{- $redis := or $v.redis.addr $v.redis.sentinel.master -}}
{{- if eq $v.storage.backend "bolt" -}}
{{- if gt $replicas 1 -}}
{{- fail (printf "replicaCount %d needs storage.backend: postgres: bolt is a file on one pod's volume, so a second replica would have accounts and messages of its own; set storage.backend: postgres with postgres.dsn and redis.addr (see docs/clustering.md), or replicaCount: 1" $replicas) -}}
{{- end -}}
{{- if $v.postgres.dsn -}}
{{- fail "postgres.dsn is set but storage.backend is bolt: set storage.backend: postgres, or remove postgres.dsn" -}}
{{- end -}}
{{- if $redis -}}
{{- fail "redis is set (redis.addr or redis.sentinel.master) but storage.backend is bolt: a cluster needs storage.backend: postgres, the replicas sharing one database" -}}
{{- end -}}
{{- else -}}
{{- $dsn := trim $v.postgres.dsn -}}
{{- if not $dsn -}}
{{- fail "storage.backend postgres needs postgres.dsn, e.g. postgres://adhocd@db.example:5432/adhocd?sslmode=verify-full (the password from postgres.existingSecret)" -}}
{{- end -}}
{{- $withPassword := false -}}
{{- if or (hasPrefix "postgres://" $dsn) (hasPrefix "postgresql://" $dsn) -}}
{{- $u := urlParse $dsn -}}
{{- $withPassword = or (contains ":" $u.userinfo) (regexMatch "(^|&)password=" $u.query) -}}
{{- else -}}
{{- $withPassword = regexMatch "(^|\\s)password\\s*=" $dsn -}}
{{- end -}}
{{- if $withPassword -}}
{{- fail "postgres.dsn holds a password, which would be written in the ConfigMap: remove it from the DSN and name the Secret that holds it in postgres.existingSecret (and postgres.existingSecretKey)" -}}
{{- end -}}
{{- if $v.persistence.existingClaim -}}
{{- fail "persistence.existingClaim is for storage.backend bolt: on postgres the pods keep nothing of their own (an emptyDir at /data); remove it" -}}
{{- end -}}
{{- if and (gt $replicas 1) (not $redis) -}}
{{- fail (printf "replicaCount %d on storage.backend postgres needs redis.addr (or redis.sentinel.master): without Redis the replicas share the data but not the sessions, and a message to a user connected to another replica would go to offline storage" $replicas) -}}
{{- end -}}
{{- end -}}
{{- if and (gt $replicas 1) (not $v.tls.existingSecret) -}}
{{- fail (printf "replicaCount %d needs tls.existingSecret: without it each pod generates a self-signed certificate of its own, and a client would see another certificate at each reconnection; make a kubernetes.io/tls Secret for %s (cert-manager, or kubectl create secret tls) and name it in tls.existingSecret" $replicas $v.domain) -}}
{{- end -}}
{{- if and $v.redis.existingSecret (not $redis) -}}
{{- fail "redis.existingSecret is set without redis.addr or redis.sentinel.master" -}}
{{- end -}}
{{- if and $v.redis.sentinel.master (not $v.redis.sentinel.addrs) -}}
{{- fail "redis.sentinel.master is set: redis.sentinel.addrs must list the Sentinels (host:port)" -}}
{{- end -}}
{{- if and $v.redis.sentinel.addrs (not $v.redis.sentinel.master) -}}
{{- fail "redis.sentinel.addrs is set without redis.sentinel.master, the name of the master the Sentinels watch" -}}
{{- end -}}
{{- if and $v.redis.sentinel.master $v.redis.addr -}}
{{- fail "redis.addr and redis.sentinel.master are both set: with Sentinel the master's address comes from the Sentinels; remove redis.addr" -}}
{{- end -}}
{{- if and $v.redis.caSecret (not $v.redis.tls) -}}
{{- fail "redis.caSecret is set but redis.tls is false" -}}
{{- end -}}
{{- if and $v.postgres.caSecret (ne $v.storage.backend "postgres") -}}
{{- fail "postgres.caSecret is set but storage.backend is bolt" -}}
{{- end -}}
{{- $grace := int $v.terminationGracePeriodSeconds -}}
{{- $preStop := int (include "adhocd.preStopSeconds" .) -}}
{{- $drain := int (include "adhocd.drainSeconds" .) -}}
{{- $margin := int (include "adhocd.stopMarginSeconds" .) -}}
{{- if or (lt $drain 0) (gt (add $drain $preStop $margin) $grace) -}}
{{- if kindIs "invalid" $v.shutdown.drainSeconds -}}
{{- fail (printf "lifecycle.preStopSleepSeconds %d leaves no time to drain connections in terminationGracePeriodSeconds %d (%d s are kept for adhocd's last closes): raise terminationGracePeriodSeconds or lower lifecycle.preStopSleepSeconds" $preStop $grace $margin) -}}
{{- else -}}
{{- fail (printf "shutdown.drainSeconds %d and the preStop hook's %d s do not fit in terminationGracePeriodSeconds %d with %d s left for adhocd's last closes: the kubelet would kill adhocd in the middle of the drain; lower shutdown.drainSeconds to at most %d (or leave it empty for that), or raise terminationGracePeriodSeconds" $drain $preStop $grace $margin (sub (sub $grace $preStop) $margin)) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Where a component's secret is mounted (config.yaml:
components.services[].secret_file), called with its domain: the key of its
existingSecret, as the file "secret" of a folder named after the domain.
*/}}
{{- define "adhocd.componentSecretFile" -}}
{{- printf "/etc/adhocd/components/%s/secret" . -}}
{{- end -}}

{{/*
config.yaml's s2s.listen when federation is on: s2s.listen, deprecated but
kept for values files of earlier versions of the chart, else ":<s2s.port>".
*/}}
{{- define "adhocd.s2sListen" -}}
{{- .Values.s2s.listen | default (printf ":%d" (int .Values.s2s.port)) -}}
{{- end -}}

{{/* The port of s2s.listen: the container and Service port xmpp-server. */}}
{{- define "adhocd.s2sPort" -}}
{{- regexReplaceAll "^.*:" (include "adhocd.s2sListen" .) "" | int -}}
{{- end -}}

{{/*
The Secret holding the dialback secret: s2s.dialbackSecret.existingSecret,
else the one the chart renders (secret.yaml).
*/}}
{{- define "adhocd.s2sDialbackSecret" -}}
{{- .Values.s2s.dialbackSecret.existingSecret | default (printf "%s-s2s-dialback" (include "adhocd.fullname" .)) -}}
{{- end -}}

{{/* The key of the dialback secret in that Secret. */}}
{{- define "adhocd.s2sDialbackKey" -}}
{{- ternary .Values.s2s.dialbackSecret.key "secret" (not (empty .Values.s2s.dialbackSecret.existingSecret)) -}}
{{- end -}}

{{/* Where the dialback secret is mounted (config.yaml: s2s.dialback_secret_file). */}}
{{- define "adhocd.s2sDialbackFile" -}}
/etc/adhocd/s2s-dialback/secret
{{- end -}}

{{/*
Where the CA bundle of s2s.caSecret or s2s.caConfigMap is mounted
(config.yaml: s2s.ca_file); empty without either.
*/}}
{{- define "adhocd.s2sCAFile" -}}
{{- if or .Values.s2s.caSecret .Values.s2s.caConfigMap -}}
/etc/adhocd/s2s-ca/ca.crt
{{- end -}}
{{- end -}}
