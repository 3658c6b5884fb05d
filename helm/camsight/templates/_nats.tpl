{{- /*
The bundled NATS (decision 0064): names, the byte sizes of values, and the check that
JetStream can hold what camsight reserves. The objects are in nats.yaml.
*/ -}}

{{- define "camsight.nats.fullname" -}}
{{- printf "%s-nats" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "camsight.nats.selectorLabels" -}}
app.kubernetes.io/name: nats
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: nats
{{- end }}

{{- define "camsight.nats.labels" -}}
helm.sh/chart: {{ include "camsight.chart" . }}
{{ include "camsight.nats.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.nats.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: camsight
{{- end }}

{{- /*
Bytes of a size: an integer, or a Kubernetes quantity with a binary suffix (512Mi,
16Gi); values.schema.json admits only these forms. Prints the integer.
*/ -}}
{{- define "camsight.bytes" -}}
{{- $q := toString . -}}
{{- $units := dict "" 1 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 -}}
{{- if not (regexMatch "^[0-9]+(Ki|Mi|Gi|Ti)?$" $q) -}}
{{- fail (printf "%q is not a size (an integer of bytes, or a number with Ki, Mi, Gi or Ti)" $q) -}}
{{- end -}}
{{- mul (regexReplaceAll "[^0-9]" $q "" | int64) (index $units (regexReplaceAll "^[0-9]+" $q "")) -}}
{{- end }}

{{- define "camsight.nats.mib" -}}
{{- div (int64 .) 1048576 }} MiB
{{- end }}

{{- /*
DEADLETTER's byte limit, fixed in camsight.bus.topology (a test checks they agree).
*/ -}}
{{- define "camsight.nats.deadletterBytes" -}}268435456{{- end }}

{{- /*
What each JetStream node must hold, from camsight's own stream settings (config.streams,
camsight.bus.topology): a stream with max_bytes reserves it on every node holding a copy,
and a node refuses a stream that does not fit (JetStream errors 10028, memory, and 10047,
storage). Per node, at most: FRAMES (memory, one copy) in the memory store; one copy of
the snapshots object store plus DEADLETTER (one copy) in the file store, which must leave
fileStore.minUnreserved for the streams without a byte limit. Fails the render naming the
values that do not fit.
*/ -}}
{{- define "camsight.nats.checkSizing" -}}
{{- $n := .Values.nats -}}
{{- $streams := .Values.config.streams | default dict -}}
{{- $frames := include "camsight.bytes" (required "config.streams.frames_max_bytes is required with the bundled NATS (the memory store is sized against it)" $streams.frames_max_bytes | int64) | int64 -}}
{{- $snapshots := include "camsight.bytes" (required "config.streams.snapshots_max_bytes is required with the bundled NATS (the file store is sized against it)" $streams.snapshots_max_bytes | int64) | int64 -}}
{{- $replicas := $streams.events_replicas | default 1 | int -}}
{{- $memory := include "camsight.bytes" $n.jetstream.memoryStore.maxSize | int64 -}}
{{- $file := include "camsight.bytes" $n.jetstream.fileStore.maxSize | int64 -}}
{{- $free := include "camsight.bytes" $n.jetstream.fileStore.minUnreserved | int64 -}}
{{- $pvc := include "camsight.bytes" $n.jetstream.fileStore.pvc.size | int64 -}}
{{- $reserved := add $snapshots (include "camsight.nats.deadletterBytes" . | int64) -}}
{{- if lt $memory $frames -}}
{{- fail (printf "nats.jetstream.memoryStore.maxSize (%s) is smaller than config.streams.frames_max_bytes (%s), the FRAMES memory stream's reservation: JetStream would refuse FRAMES (error 10028)" (include "camsight.nats.mib" $memory) (include "camsight.nats.mib" $frames)) -}}
{{- end -}}
{{- if lt $file (add $reserved $free) -}}
{{- fail (printf "nats.jetstream.fileStore.maxSize (%s) must hold config.streams.snapshots_max_bytes (%s) + DEADLETTER (256 MiB) + nats.jetstream.fileStore.minUnreserved (%s) = %s: JetStream would refuse the snapshots store (error 10047)" (include "camsight.nats.mib" $file) (include "camsight.nats.mib" $snapshots) (include "camsight.nats.mib" $free) (include "camsight.nats.mib" (add $reserved $free))) -}}
{{- end -}}
{{- if lt $pvc $file -}}
{{- fail (printf "nats.jetstream.fileStore.pvc.size (%s) is smaller than nats.jetstream.fileStore.maxSize (%s): the volume would fill before JetStream's limit" (include "camsight.nats.mib" $pvc) (include "camsight.nats.mib" $file)) -}}
{{- end -}}
{{- with $n.resources.limits }}{{ with .memory }}
{{- if le (include "camsight.bytes" . | int64) $memory -}}
{{- fail (printf "nats.resources.limits.memory (%s) must exceed nats.jetstream.memoryStore.maxSize (%s): a full memory store would get the server OOM-killed" . $n.jetstream.memoryStore.maxSize) -}}
{{- end -}}
{{- end }}{{ end -}}
{{- if gt $replicas ($n.replicas | int) -}}
{{- fail (printf "config.streams.events_replicas (%d) exceeds nats.replicas (%d): JetStream cannot place that many copies" $replicas ($n.replicas | int)) -}}
{{- end -}}
{{- end }}

{{- /* Secret names of the NATS TLS certificates: given, or issued by cert-manager. */ -}}
{{- define "camsight.nats.tlsSecret" -}}
{{- $side := index .root.Values.nats.tls .side -}}
{{- if $side.secretName }}{{ $side.secretName }}
{{- else if .root.Values.nats.tls.certManager.enabled }}{{ include "camsight.nats.fullname" .root }}-{{ .side }}-tls
{{- else }}{{ fail (printf "nats.tls.%s.enabled needs nats.tls.%s.secretName (a kubernetes.io/tls Secret with ca.crt) or nats.tls.certManager.enabled" .side .side) }}
{{- end }}
{{- end }}
