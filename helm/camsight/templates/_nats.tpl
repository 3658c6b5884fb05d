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
What camsight reserves per JetStream node, by storage ("memory", "file"): the bytes and
their terms ("config.streams.frames_max_bytes (512 MiB: FRAMES)"), summed from
files/jetstream-reservations.json, which camsight.bus.sizing derives from the topology
(a test fails when it is stale): each setting's value from config.streams, plus the fixed
limits. Call with (dict "root" $ "storage" "file"); prints JSON {"bytes", "terms"}.
*/ -}}
{{- define "camsight.nats.reserved" -}}
{{- $streams := .root.Values.config.streams | default dict -}}
{{- $part := index (.root.Files.Get "files/jetstream-reservations.json" | fromJson) .storage -}}
{{- $sum := 0 | int64 -}}
{{- $terms := list -}}
{{- range $setting, $stream := $part.settings -}}
{{- $value := required (printf "config.streams.%s is required with the bundled NATS: %s reserves it in the %s store" $setting $stream $.storage) (index $streams $setting) -}}
{{- $bytes := include "camsight.bytes" ($value | int64) | int64 -}}
{{- $sum = add $sum $bytes -}}
{{- $terms = append $terms (printf "config.streams.%s (%s: %s)" $setting (include "camsight.nats.mib" $bytes) $stream) -}}
{{- end -}}
{{- range $stream, $bytes := $part.fixed -}}
{{- $sum = add $sum ($bytes | int64) -}}
{{- $terms = append $terms (printf "%s (%s)" $stream (include "camsight.nats.mib" ($bytes | int64))) -}}
{{- end -}}
{{- dict "bytes" $sum "terms" (join " + " $terms) | toJson -}}
{{- end }}

{{- /*
A node refuses a stream that does not fit (JetStream errors 10028, memory, and 10047,
storage), and a node may hold one copy of every stream: the memory store must hold
the memory reservations, the file store the file reservations plus
fileStore.minUnreserved for the streams without a byte limit. Fails the render naming
the values that do not fit.
*/ -}}
{{- define "camsight.nats.checkSizing" -}}
{{- $n := .Values.nats -}}
{{- $streams := .Values.config.streams | default dict -}}
{{- $replicas := $streams.events_replicas | default 1 | int -}}
{{- $inMemory := include "camsight.nats.reserved" (dict "root" . "storage" "memory") | fromJson -}}
{{- $onFile := include "camsight.nats.reserved" (dict "root" . "storage" "file") | fromJson -}}
{{- $memory := include "camsight.bytes" $n.jetstream.memoryStore.maxSize | int64 -}}
{{- $file := include "camsight.bytes" $n.jetstream.fileStore.maxSize | int64 -}}
{{- $free := include "camsight.bytes" $n.jetstream.fileStore.minUnreserved | int64 -}}
{{- $pvc := include "camsight.bytes" $n.jetstream.fileStore.pvc.size | int64 -}}
{{- $fileNeed := add ($onFile.bytes | int64) $free -}}
{{- if lt $memory ($inMemory.bytes | int64) -}}
{{- fail (printf "nats.jetstream.memoryStore.maxSize (%s) is smaller than %s, what camsight's memory streams reserve: JetStream would refuse them (error 10028)" (include "camsight.nats.mib" $memory) $inMemory.terms) -}}
{{- end -}}
{{- if lt $file $fileNeed -}}
{{- fail (printf "nats.jetstream.fileStore.maxSize (%s) must hold %s + nats.jetstream.fileStore.minUnreserved (%s) = %s: JetStream would refuse the file streams (error 10047)" (include "camsight.nats.mib" $file) $onFile.terms (include "camsight.nats.mib" $free) (include "camsight.nats.mib" $fileNeed)) -}}
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

{{- /* The mounts of the enabled TLS sides, /etc/nats-tls/<side>; call with .Values.nats. */ -}}
{{- define "camsight.nats.tlsMounts" -}}
{{- range $side := list "client" "routes" }}
{{- if (index $.tls $side).enabled }}
- {name: tls-{{ $side }}, mountPath: /etc/nats-tls/{{ $side }}, readOnly: true}
{{- end }}
{{- end }}
{{- end }}

{{- /* Secret names of the NATS TLS certificates: given, or issued by cert-manager. */ -}}
{{- define "camsight.nats.tlsSecret" -}}
{{- $side := index .root.Values.nats.tls .side -}}
{{- if $side.secretName }}{{ $side.secretName }}
{{- else if .root.Values.nats.tls.certManager.enabled }}{{ include "camsight.nats.fullname" .root }}-{{ .side }}-tls
{{- else }}{{ fail (printf "nats.tls.%s.enabled needs nats.tls.%s.secretName (a kubernetes.io/tls Secret with ca.crt) or nats.tls.certManager.enabled" .side .side) }}
{{- end }}
{{- end }}
