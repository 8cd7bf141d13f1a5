{{- /*
The pod template of adhocd, shared by the StatefulSet (storage.backend bolt)
and the Deployment (postgres). What only the Deployment has depends on
$deploy: the preStop hook, the PostgreSQL and Redis passwords and CAs, the
emptyDir at /data, the default spreading over nodes. The lines are indented
for their place under the workload's spec: include it right after
"  template:", with no space or newline between.
*/ -}}
{{- define "adhocd.podTemplate" }}
{{- $deploy := eq .Values.storage.backend "postgres" }}
{{- $cluster := include "adhocd.clustered" . }}
{{- $pgPassword := and $deploy .Values.postgres.existingSecret }}
{{- $pgCA := and $deploy .Values.postgres.caSecret }}
{{- $redisPassword := and $cluster .Values.redis.existingSecret }}
{{- $redisCA := and $cluster .Values.redis.caSecret }}
{{- $s2s := .Values.s2s }}
{{- $s2sCA := and $s2s.enabled (include "adhocd.s2sCAFile" .) }}
{{- $affinity := .Values.affinity }}
{{- if and $deploy (not (hasKey .Values.affinity "podAntiAffinity")) }}
{{- /* Beside the user's node affinity, if any: replicas on other nodes where they can be. */}}
{{- $affinity = merge (dict "podAntiAffinity" (include "adhocd.podAntiAffinity" . | fromYaml)) (deepCopy .Values.affinity) }}
{{- end }}
    metadata:
      labels:
        {{- include "adhocd.selectorLabels" . | nindent 8 }}
        {{- with .Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
        {{- with .Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "adhocd.serviceAccountName" . }}
      # adhocd never calls the Kubernetes API.
      automountServiceAccountToken: false
      {{- with .Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.priorityClassName }}
      priorityClassName: {{ . | quote }}
      {{- end }}
      terminationGracePeriodSeconds: {{ int .Values.terminationGracePeriodSeconds }}
      securityContext:
        {{- toYaml .Values.podSecurityContext | nindent 8 }}
      {{- with .Values.initContainers }}
      initContainers:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: adhocd
          image: {{ include "adhocd.image" . | quote }}
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          args: ["--config", "/etc/adhocd/config.yaml"]
          {{- if or .Values.adminBootstrap.enabled .Values.extraEnv $pgPassword $pgCA $redisPassword }}
          env:
            {{- if .Values.adminBootstrap.enabled }}
            - name: ADHOCD_ADMIN_JID
              value: {{ include "adhocd.adminJID" . | quote }}
            - name: ADHOCD_ADMIN_PASSWORD
              valueFrom:
                secretKeyRef:
                  name: {{ include "adhocd.adminSecret" . }}
                  key: {{ include "adhocd.adminSecretKey" . }}
            {{- end }}
            {{- if $pgPassword }}
            # Read by adhocd in place of a password in the DSN, which has none.
            - name: ADHOCD_POSTGRES_PASSWORD
              valueFrom:
                secretKeyRef:
                  name: {{ .Values.postgres.existingSecret }}
                  key: {{ .Values.postgres.existingSecretKey }}
            {{- end }}
            {{- if $pgCA }}
            # libpq's variable, which pgx reads: the CA that sslmode=verify-full checks against.
            - name: PGSSLROOTCERT
              value: /etc/adhocd/postgres-ca/ca.crt
            {{- end }}
            {{- if $redisPassword }}
            - name: ADHOCD_REDIS_PASSWORD
              valueFrom:
                secretKeyRef:
                  name: {{ .Values.redis.existingSecret }}
                  key: {{ .Values.redis.existingSecretKey }}
            {{- end }}
            {{- with .Values.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- end }}
          {{- with .Values.extraEnvFrom }}
          envFrom:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          ports:
            - name: xmpp-client
              containerPort: {{ int .Values.c2s.port }}
              protocol: TCP
            {{- if .Values.c2s.directTLS.enabled }}
            - name: xmpps-client
              containerPort: {{ int .Values.c2s.directTLS.port }}
              protocol: TCP
            {{- end }}
            - name: metrics
              containerPort: {{ int .Values.metrics.port }}
              protocol: TCP
            {{- if .Values.websocket.enabled }}
            - name: xmpp-websocket
              containerPort: {{ int .Values.websocket.port }}
              protocol: TCP
            {{- end }}
            {{- if .Values.httpUpload.enabled }}
            - name: http-upload
              containerPort: {{ int .Values.httpUpload.port }}
              protocol: TCP
            {{- end }}
            {{- if .Values.components.enabled }}
            - name: xmpp-component
              containerPort: {{ int .Values.components.port }}
              protocol: TCP
            {{- end }}
            {{- if $s2s.enabled }}
            # Federation (RFC 6120 server-to-server), and XEP-0368 direct TLS.
            - name: xmpp-server
              containerPort: {{ include "adhocd.s2sPort" . }}
              protocol: TCP
            {{- if $s2s.directTLS.enabled }}
            - name: xmpps-server
              containerPort: {{ int $s2s.directTLS.port }}
              protocol: TCP
            {{- end }}
            {{- end }}
          {{- if .Values.probes.startup.enabled }}
          startupProbe:
            {{- include "adhocd.probe" (list . "startup" "/readyz") | nindent 12 }}
          {{- end }}
          {{- if .Values.probes.readiness.enabled }}
          readinessProbe:
            {{- include "adhocd.probe" (list . "readiness" "/readyz") | nindent 12 }}
          {{- end }}
          {{- if .Values.probes.liveness.enabled }}
          livenessProbe:
            # /healthz never touches storage: a slow disk does not kill the pod.
            {{- include "adhocd.probe" (list . "liveness" "/healthz") | nindent 12 }}
          {{- end }}
          {{- if and $deploy (gt (int .Values.lifecycle.preStopSleepSeconds) 0) }}
          lifecycle:
            # Kubernetes takes a terminating pod out of the Services' endpoints
            # while this runs; adhocd closes its listeners at SIGTERM, after it,
            # so that no new client is sent to a closed port meanwhile.
            preStop:
              sleep:
                seconds: {{ int .Values.lifecycle.preStopSleepSeconds }}
          {{- end }}
          securityContext:
            {{- toYaml .Values.securityContext | nindent 12 }}
          {{- with .Values.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          volumeMounts:
            - name: data
              mountPath: /data
            {{- if include "adhocd.uploadVolume" . }}
            # The uploaded files (http_upload.path).
            - name: uploads
              mountPath: /uploads
            {{- end }}
            - name: config
              mountPath: /etc/adhocd/config.yaml
              subPath: config.yaml
              readOnly: true
            {{- if .Values.tls.existingSecret }}
            - name: tls
              mountPath: /etc/adhocd/tls
              readOnly: true
            {{- end }}
            {{- if $pgCA }}
            - name: postgres-ca
              mountPath: /etc/adhocd/postgres-ca
              readOnly: true
            {{- end }}
            {{- if $redisCA }}
            - name: redis-ca
              mountPath: /etc/adhocd/redis-ca
              readOnly: true
            {{- end }}
            {{- if .Values.components.enabled }}
            {{- range $i, $c := .Values.components.services }}
            # The secret of the XEP-0114 component {{ $c.domain }} (components.services[].secret_file).
            - name: component-{{ $i }}
              mountPath: {{ dir (include "adhocd.componentSecretFile" $c.domain) }}
              readOnly: true
            {{- end }}
            {{- end }}
            {{- if $s2s.enabled }}
            # The dialback secret every replica shares (s2s.dialback_secret_file).
            - name: s2s-dialback
              mountPath: {{ dir (include "adhocd.s2sDialbackFile" .) }}
              readOnly: true
            {{- if $s2sCA }}
            # The CAs remote certificates are verified against (s2s.ca_file).
            - name: s2s-ca
              mountPath: {{ dir $s2sCA }}
              readOnly: true
            {{- end }}
            {{- end }}
            {{- with .Values.extraVolumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
        {{- with .Values.sidecars }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      volumes:
        - name: config
          configMap:
            name: {{ include "adhocd.fullname" . }}
        {{- if .Values.tls.existingSecret }}
        - name: tls
          secret:
            secretName: {{ .Values.tls.existingSecret }}
        {{- end }}
        {{- if $deploy }}
        # The generated certificate (without tls.existingSecret) and the
        # control socket: the data itself is in PostgreSQL.
        - name: data
          emptyDir: {}
        {{- with .Values.postgres.caSecret }}
        - name: postgres-ca
          secret:
            secretName: {{ . }}
            items:
              - key: {{ $.Values.postgres.caSecretKey }}
                path: ca.crt
        {{- end }}
        {{- if $redisCA }}
        - name: redis-ca
          secret:
            secretName: {{ .Values.redis.caSecret }}
            items:
              - key: {{ .Values.redis.caSecretKey }}
                path: ca.crt
        {{- end }}
        {{- else }}
        {{- with .Values.persistence.existingClaim }}
        - name: data
          persistentVolumeClaim:
            claimName: {{ . }}
        {{- end }}
        {{- end }}
        {{- if .Values.components.enabled }}
        {{- range $i, $c := .Values.components.services }}
        - name: component-{{ $i }}
          secret:
            secretName: {{ $c.existingSecret }}
            items:
              - key: {{ $c.key | default "secret" }}
                path: {{ base (include "adhocd.componentSecretFile" $c.domain) }}
        {{- end }}
        {{- end }}
        {{- if $s2s.enabled }}
        - name: s2s-dialback
          secret:
            secretName: {{ include "adhocd.s2sDialbackSecret" . }}
            items:
              - key: {{ include "adhocd.s2sDialbackKey" . }}
                path: {{ base (include "adhocd.s2sDialbackFile" .) }}
        {{- if $s2sCA }}
        - name: s2s-ca
          {{- if $s2s.caSecret }}
          secret:
            secretName: {{ $s2s.caSecret }}
          {{- else }}
          configMap:
            name: {{ $s2s.caConfigMap }}
          {{- end }}
            items:
              - key: {{ $s2s.caKey }}
                path: {{ base $s2sCA }}
        {{- end }}
        {{- end }}
        {{- if and (include "adhocd.uploadVolume" .) .Values.httpUpload.persistence.existingClaim }}
        - name: uploads
          persistentVolumeClaim:
            claimName: {{ .Values.httpUpload.persistence.existingClaim }}
        {{- end }}
        {{- with .Values.extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with .Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- toYaml . | nindent 8 }}
      {{- else }}
      {{- if $deploy }}
      topologySpreadConstraints:
        # One replica per node as far as the nodes allow, never blocking a
        # pod; pod-template-hash: a rollout spreads its new pods among
        # themselves, the old ones being on their way out.
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "adhocd.selectorLabels" . | nindent 14 }}
          matchLabelKeys: [pod-template-hash]
      {{- end }}
      {{- end }}
{{- end }}
