{{/* Names */}}
{{- define "camsight.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "camsight.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "camsight.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "camsight.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "camsight.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "camsight.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "camsight.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Labels; call with (dict "root" $ "component" "decoder") */}}
{{- define "camsight.selectorLabels" -}}
app.kubernetes.io/name: {{ include "camsight.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{- define "camsight.labels" -}}
helm.sh/chart: {{ include "camsight.chart" .root }}
{{ include "camsight.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: camsight
{{- end }}

{{/* The image of a role; call with (dict "root" $ "target" "core|faces|analyzers" "gpu" bool).
A GPU service runs the analyzers image's CUDA build, the only one with CUDA wheels. */}}
{{- define "camsight.image" -}}
{{- $tag := default .root.Chart.AppVersion .root.Values.image.tag -}}
{{- if .gpu }}
{{- $tag = printf "%s%s%s" $tag (index .root.Values.image.targets "analyzers") .root.Values.image.cudaSuffix -}}
{{- else }}
{{- $tag = printf "%s%s" $tag (index .root.Values.image.targets .target) -}}
{{- end -}}
{{ .root.Values.image.repository }}:{{ $tag }}
{{- end }}

{{/* NATS URLs: the bundled cluster's client service, or externalNats.servers. */}}
{{- define "camsight.natsServers" -}}
{{- if .Values.nats.enabled -}}
{{- list (printf "%s://%s.%s.svc:4222" (ternary "tls" "nats" .Values.nats.tls.client.enabled) (include "camsight.nats.fullname" .) .Release.Namespace) | toJson -}}
{{- else if .Values.externalNats.servers -}}
{{- .Values.externalNats.servers | toJson -}}
{{- else -}}
{{- fail "externalNats.servers is required when nats.enabled is false" -}}
{{- end -}}
{{- end }}

{{- define "camsight.natsSecretName" -}}
{{- default (printf "%s-nats-auth" (include "camsight.fullname" .)) .Values.natsAuth.existingSecret }}
{{- end }}

{{- define "camsight.natsAuthEnabled" -}}
{{- if or .Values.natsAuth.existingSecret .Values.natsAuth.user .Values.natsAuth.password .Values.natsAuth.token }}true{{ end }}
{{- end }}

{{/*
"true" when the chart generates one NATS user per service (templates/nats-users.yaml):
the bundled NATS with natsAuth.perServiceUsers (shared credentials are then refused,
camsight.checkNatsAuth).
*/}}
{{- define "camsight.natsUsers" -}}
{{- if and .Values.nats.enabled .Values.natsAuth.perServiceUsers }}true{{ end }}
{{- end }}

{{/*
Fails the render where NATS credentials and NATS authorization disagree, so no install
ends with a password in a Secret and a NATS that does not ask for it (decision 0064).
*/}}
{{- define "camsight.checkNatsAuth" -}}
{{- $a := .Values.natsAuth -}}
{{- if .Values.nats.enabled -}}
{{- if and $a.perServiceUsers (include "camsight.natsAuthEnabled" .) -}}
{{- fail "natsAuth.user/password/token/existingSecret are shared NATS credentials, but the bundled NATS authorizes only the per-service users (natsAuth.perServiceUsers: true) and would refuse them: remove them, or set natsAuth.perServiceUsers: false to make the bundled NATS require these credentials" -}}
{{- end -}}
{{- if and (not $a.perServiceUsers) $a.existingSecret -}}
{{- fail "natsAuth.existingSecret with the bundled NATS and natsAuth.perServiceUsers: false: the chart cannot configure NATS authorization from a Secret it does not read; give natsAuth.user and natsAuth.password (or natsAuth.token), keep natsAuth.perServiceUsers: true, or run NATS yourself (nats.enabled: false)" -}}
{{- end -}}
{{- if and (not $a.perServiceUsers) (not (include "camsight.natsAuthEnabled" .)) (not $a.allowAnonymous) -}}
{{- fail "natsAuth.perServiceUsers is false and no natsAuth.user/password or natsAuth.token is set: the bundled NATS would accept anyone; set credentials, or natsAuth.allowAnonymous: true to run it open on purpose" -}}
{{- end -}}
{{- end -}}
{{- if and $a.usersExistingSecret (not (include "camsight.natsUsers" .)) -}}
{{- fail "natsAuth.usersExistingSecret holds per-service passwords: it needs the bundled NATS and natsAuth.perServiceUsers: true" -}}
{{- end -}}
{{- if and $a.user (not $a.password) -}}
{{- fail "natsAuth.user needs natsAuth.password" -}}
{{- end -}}
{{- end }}

{{/* Secret names independent of nameOverride: the NATS subchart names them from the release. */}}
{{- define "camsight.natsUsersSecretName" -}}
{{- default (printf "%s-camsight-nats-users" .Release.Name) .Values.natsAuth.usersExistingSecret }}
{{- end }}

{{- /* The NATS container's variable holding a role's password (natsAuth.usersExistingSecret). */ -}}
{{- define "camsight.natsPasswordVar" -}}
CAMSIGHT_NATS_PASSWORD_{{ . | upper | replace "-" "_" }}
{{- end }}

{{- define "camsight.natsAuthConfSecretName" -}}
{{- printf "%s-camsight-nats-conf" .Release.Name }}
{{- end }}

{{/*
NATS credentials as environment: the role's own generated user (a service name, or
"topology") with its own reply-inbox prefix (the only inboxes files/nats-permissions.json
lets it subscribe to), else the shared natsAuth credentials. Call with
(dict "root" $ "role" "decoder").
*/}}
{{- define "camsight.natsEnv" -}}
{{- $root := .root -}}
{{- if include "camsight.natsUsers" $root }}
- name: CAMSIGHT_NATS__USER
  value: camsight-{{ .role }}
- name: CAMSIGHT_NATS__INBOX_PREFIX
  value: _INBOX.camsight-{{ .role }}
- name: CAMSIGHT_NATS__PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "camsight.natsUsersSecretName" $root }}
      key: {{ .role }}
{{- else if include "camsight.natsAuthEnabled" $root }}
{{- range $key, $var := dict "user" "CAMSIGHT_NATS__USER" "password" "CAMSIGHT_NATS__PASSWORD" "token" "CAMSIGHT_NATS__TOKEN" }}
{{- if or $root.Values.natsAuth.existingSecret (index $root.Values.natsAuth $key) }}
- name: {{ $var }}
  valueFrom:
    secretKeyRef:
      name: {{ include "camsight.natsSecretName" $root }}
      key: {{ $key }}
      optional: {{ not (index $root.Values.natsAuth $key) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{- define "camsight.gpuEnabled" -}}
{{- $svc := index .root.Values.services .name -}}
{{- if and $svc.gpu $svc.gpu.enabled }}true{{ end }}
{{- end }}

{{/*
The pod template every workload shares: security context, config file,
secrets as environment, /tmp and data emptyDirs, probes on the health port,
GPU scheduling for analyzers and the decoder. Call with (dict "root" $ "name" "detector").
*/}}
{{- define "camsight.podTemplate" -}}
{{- $root := .root -}}
{{- $name := .name -}}
{{- $svc := index $root.Values.services $name -}}
{{- $gpu := include "camsight.gpuEnabled" . -}}
metadata:
  labels:
    {{- include "camsight.labels" (dict "root" $root "component" $name) | nindent 4 }}
    {{- with $root.Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
    checksum/secrets: {{ include (print $root.Template.BasePath "/secrets.yaml") $root | sha256sum }}
    {{- /* New NATS passwords (a rotation) roll the pods that read them, as they roll NATS. */}}
    checksum/nats-users: {{ include (print $root.Template.BasePath "/nats-users.yaml") $root | sha256sum }}
    {{- with $root.Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ if eq $name "controller" }}{{ include "camsight.serviceAccountName" $root }}-controller{{ else }}{{ include "camsight.serviceAccountName" $root }}{{ end }}
  automountServiceAccountToken: {{ eq $name "controller" }}
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  {{- if $gpu }}
  runtimeClassName: {{ $svc.gpu.runtimeClassName }}
  {{- end }}
  {{- $nodeSelector := $svc.nodeSelector | default dict }}
  {{- if $gpu }}{{ $nodeSelector = merge (deepCopy $nodeSelector) $svc.gpu.nodeSelector }}{{ end }}
  {{- with $nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- $tolerations := $svc.tolerations | default list }}
  {{- if $gpu }}{{ $tolerations = concat $tolerations $svc.gpu.tolerations }}{{ end }}
  {{- with $tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- /* Replicas prefer distinct nodes and zones (soft: never blocks scheduling). */}}
  affinity:
    {{- if $svc.affinity }}
    {{- toYaml $svc.affinity | nindent 4 }}
    {{- else }}
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 100
          podAffinityTerm:
            topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels:
                {{- include "camsight.selectorLabels" (dict "root" $root "component" $name) | nindent 16 }}
    {{- end }}
  topologySpreadConstraints:
    {{- if $svc.topologySpreadConstraints }}
    {{- toYaml $svc.topologySpreadConstraints | nindent 4 }}
    {{- else }}
    - maxSkew: 1
      topologyKey: topology.kubernetes.io/zone
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "camsight.selectorLabels" (dict "root" $root "component" $name) | nindent 10 }}
    {{- end }}
  terminationGracePeriodSeconds: 45
  containers:
    - name: {{ $name }}
      image: {{ include "camsight.image" (dict "root" $root "target" $svc.imageTarget "gpu" $gpu) }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      args: ["serve", {{ $name | quote }}, "--config", "/etc/camsight/config.yaml"]
      ports:
        - name: http
          containerPort: {{ $root.Values.httpPort }}
          protocol: TCP
        {{- if eq $name "query" }}
        - name: grpc
          containerPort: {{ $svc.grpcPort }}
          protocol: TCP
        {{- if $svc.console.enabled }}
        - name: console
          containerPort: {{ $svc.console.port }}
          protocol: TCP
        {{- end }}
        {{- end }}
      env:
        - name: CAMSIGHT_INSTANCE
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        {{- if eq $name "behavior" }}
        # The StatefulSet ordinal is this replica's partition.
        - name: CAMSIGHT_SERVICES__BEHAVIOR__REPLICA_INDEX
          valueFrom:
            fieldRef:
              fieldPath: metadata.labels['apps.kubernetes.io/pod-index']
        {{- end }}
        {{- include "camsight.natsEnv" (dict "root" $root "role" $name) | nindent 8 }}
        {{- if and (eq $name "decoder") (or $root.Values.cameras $root.Values.camerasExistingSecret) }}
        - name: CAMSIGHT_CAMERAS
          valueFrom:
            secretKeyRef:
              name: {{ default (printf "%s-cameras" (include "camsight.fullname" $root)) $root.Values.camerasExistingSecret }}
              key: CAMSIGHT_CAMERAS
        {{- end }}
        {{- if and $gpu (eq $name "decoder") }}
        # NVDEC needs the driver's video libraries (libnvcuvid), which the NVIDIA runtime
        # mounts only with the video capability; the image asks for compute and utility.
        - name: NVIDIA_DRIVER_CAPABILITIES
          value: compute,utility,video
        {{- end }}
        {{- if and (eq $name "query") (or $root.Values.apiTokens.tokens $root.Values.apiTokens.existingSecret) }}
        - name: CAMSIGHT_SERVICES__QUERY
          valueFrom:
            secretKeyRef:
              name: {{ default (printf "%s-api-tokens" (include "camsight.fullname" $root)) $root.Values.apiTokens.existingSecret }}
              key: CAMSIGHT_SERVICES__QUERY
        {{- end }}
        {{- with $svc.env }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      resources:
        {{- $resources := deepCopy ($svc.resources | default dict) }}
        {{- if $gpu }}
        {{- $limits := merge (dict $svc.gpu.resourceName $svc.gpu.count) ($resources.limits | default dict) }}
        {{- $_ := set $resources "limits" $limits }}
        {{- end }}
        {{- toYaml $resources | nindent 8 }}
      # Started: the process answers (/healthz), however late NATS or the topology is;
      # ready: NATS connected and the topology present (/readyz). Waiting for either
      # leaves a pod unready, never restarted.
      startupProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: {{ $svc.startupProbe.periodSeconds }}
        failureThreshold: {{ $svc.startupProbe.failureThreshold }}
        timeoutSeconds: 3
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        periodSeconds: 5
        failureThreshold: 3
        timeoutSeconds: 3
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: 10
        failureThreshold: 6
        timeoutSeconds: 5
      volumeMounts:
        - name: config
          mountPath: /etc/camsight
          readOnly: true
        - name: tmp
          mountPath: /tmp
        - name: data
          mountPath: /var/lib/camsight
        {{- include "camsight.natsCaMount" $root | nindent 8 }}
        {{- if and (eq $name "query") $svc.tls.secretName }}
        - name: grpc-tls
          mountPath: /etc/camsight/tls
          readOnly: true
        {{- end }}
        {{- if and $root.Values.models.enabled (has $name (list "detector" "face")) }}
        - name: models
          mountPath: {{ $root.Values.models.mountPath }}
          readOnly: true
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "camsight.fullname" $root }}-config
    - name: tmp
      emptyDir:
        sizeLimit: 1Gi
    - name: data
      emptyDir:
        sizeLimit: {{ if eq $name "query" }}{{ $svc.indexVolume.sizeLimit }}{{ else }}2Gi{{ end }}
    {{- include "camsight.natsCaVolume" $root | nindent 4 }}
    {{- if and (eq $name "query") $svc.tls.secretName }}
    - name: grpc-tls
      secret:
        secretName: {{ $svc.tls.secretName }}
    {{- end }}
    {{- if and $root.Values.models.enabled (has $name (list "detector" "face")) }}
    - name: models
      persistentVolumeClaim:
        claimName: {{ default (printf "%s-models" (include "camsight.fullname" $root)) $root.Values.models.existingClaim }}
        readOnly: true
    {{- end }}
{{- end }}

{{- /* Egress every camsight pod needs: DNS and NATS. Call with the root context. */ -}}
{{- define "camsight.egressDnsAndNats" -}}
- to:
    - namespaceSelector:
        {{- toYaml $.Values.networkPolicy.dns.namespaceSelector | nindent 8 }}
      podSelector:
        {{- toYaml $.Values.networkPolicy.dns.podSelector | nindent 8 }}
    {{- range $.Values.networkPolicy.dns.cidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
- to:
    {{- if $.Values.nats.enabled }}
    - podSelector:
        matchLabels:
          app.kubernetes.io/name: nats
          app.kubernetes.io/instance: {{ $.Release.Name }}
    {{- else }}
    - {{- with $.Values.externalNats.namespaceSelector }}
      namespaceSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      podSelector:
        {{- toYaml ($.Values.externalNats.podSelector | default dict) | nindent 8 }}
    {{- end }}
  ports:
    - port: {{ if $.Values.nats.enabled }}4222{{ else }}{{ $.Values.externalNats.port }}{{ end }}
      protocol: TCP
{{- end }}

{{- /*
The CA of the bundled NATS's client TLS (nats.tls.client): a volume of that Secret's
ca.crt and its mount at /etc/camsight/nats-ca, which the config file's nats.tls.ca_file
names. Call "camsight.natsCaMount" / "camsight.natsCaVolume" with the root context.
*/ -}}
{{- define "camsight.natsTls" -}}
{{- if and .Values.nats.enabled .Values.nats.tls.client.enabled }}true{{ end }}
{{- end }}

{{- define "camsight.natsCaMount" -}}
{{- if include "camsight.natsTls" . }}
- name: nats-ca
  mountPath: /etc/camsight/nats-ca
  readOnly: true
{{- end }}
{{- end }}

{{- define "camsight.natsCaVolume" -}}
{{- if include "camsight.natsTls" . }}
- name: nats-ca
  secret:
    secretName: {{ include "camsight.nats.tlsSecret" (dict "root" . "side" "client") }}
    items:
      - {key: ca.crt, path: ca.crt}
{{- end }}
{{- end }}

{{- /*
Fails the render where the console's values cannot work: an Ingress to a console that is
off, or the console with gRPC TLS (it calls the gRPC API as a plaintext client, decision
0054; the query service would refuse to start).
*/ -}}
{{- define "camsight.checkConsole" -}}
{{- $q := .Values.services.query -}}
{{- if and $q.console.ingress.enabled (not (and $q.enabled $q.console.enabled)) -}}
{{- fail "services.query.console.ingress.enabled needs services.query.enabled and services.query.console.enabled" -}}
{{- end -}}
{{- if and $q.console.enabled $q.tls.secretName -}}
{{- fail "services.query.console.enabled with services.query.tls.secretName: the console cannot yet call a TLS gRPC server (decision 0054); use one or the other" -}}
{{- end -}}
{{- end }}
