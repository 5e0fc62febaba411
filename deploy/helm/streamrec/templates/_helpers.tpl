{{/* Names */}}
{{- define "streamrec.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "streamrec.worker" -}}{{ include "streamrec.fullname" . }}-worker{{- end -}}
{{- define "streamrec.trainer" -}}{{ include "streamrec.fullname" . }}-trainer{{- end -}}

{{- define "streamrec.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "streamrec.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "streamrec.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The Secret holding credentials: the user's own, or the chart's when any value is given. */}}
{{- define "streamrec.hasSecretValues" -}}
{{- with .Values.secrets -}}{{- if or .saslUsername .saslPassword .authToken .modelSigningKey -}}true{{- end -}}{{- end -}}
{{- end -}}
{{- define "streamrec.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-credentials" (include "streamrec.fullname" .)) -}}
{{- end -}}
{{- define "streamrec.useSecret" -}}
{{- if or .Values.secrets.existingSecret (include "streamrec.hasSecretValues" .) -}}true{{- end -}}
{{- end -}}
{{- define "streamrec.tlsSecretName" -}}
{{- .Values.kafka.tls.existingSecret | default (printf "%s-kafka-tls" (include "streamrec.fullname" .)) -}}
{{- end -}}

{{/* One env entry from the credentials Secret, optional so a Secret of one's own may omit keys. */}}
{{- define "streamrec.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "streamrec.secretName" .root }}
      key: {{ .key }}
      optional: true
{{- end -}}

{{/* NAME: value pairs given by the user; only STREAMREC_* names are accepted. */}}
{{- define "streamrec.extraEnv" -}}
{{- range $name, $value := . }}
{{- if not (hasPrefix "STREAMREC_" $name) }}
{{- fail (printf "extraEnv: %s is not a streamrec setting (names start with STREAMREC_)" $name) }}
{{- end }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/* Settings shared by workers and the trainer. */}}
{{- define "streamrec.commonEnv" -}}
- name: STREAMREC_BROKER
  value: {{ .Values.kafka.broker | quote }}
- name: STREAMREC_EVENTS_PARTITIONS
  value: {{ .Values.kafka.eventsPartitions | quote }}
- name: STREAMREC_EVENTS_TOPIC
  value: {{ .Values.kafka.topics.events | quote }}
- name: STREAMREC_RECOMMENDATIONS_TOPIC
  value: {{ .Values.kafka.topics.recommendations | quote }}
- name: STREAMREC_DLQ_TOPIC
  value: {{ .Values.kafka.topics.dlq | quote }}
- name: STREAMREC_SHARED_TOPIC
  value: {{ .Values.kafka.topics.shared | quote }}
- name: STREAMREC_SECURITY_PROTOCOL
  value: {{ .Values.kafka.securityProtocol | quote }}
- name: STREAMREC_SASL_MECHANISM
  value: {{ .Values.kafka.saslMechanism | quote }}
- name: STREAMREC_APP_ID
  value: {{ .Values.worker.appId | quote }}
- name: STREAMREC_DATA_DIR
  value: /data
- name: STREAMREC_REGISTRY_DIR
  value: /registry
- name: STREAMREC_LOG_LEVEL
  value: {{ .Values.worker.logLevel | quote }}
{{- if include "streamrec.useSecret" . }}
{{ include "streamrec.secretEnv" (dict "root" . "name" "STREAMREC_SASL_USERNAME" "key" "sasl-username") }}
{{ include "streamrec.secretEnv" (dict "root" . "name" "STREAMREC_SASL_PASSWORD" "key" "sasl-password") }}
{{ include "streamrec.secretEnv" (dict "root" . "name" "STREAMREC_MODEL_SIGNING_KEY" "key" "model-signing-key") }}
{{- end }}
{{- if .Values.kafka.tls.enabled }}
- name: STREAMREC_SSL_CAFILE
  value: /etc/streamrec/tls/ca.crt
{{- if or .Values.kafka.tls.cert (and .Values.kafka.tls.existingSecret .Values.kafka.tls.clientCertificate) }}
- name: STREAMREC_SSL_CERTFILE
  value: /etc/streamrec/tls/tls.crt
- name: STREAMREC_SSL_KEYFILE
  value: /etc/streamrec/tls/tls.key
{{- end }}
{{- end }}
{{- end -}}

{{- define "streamrec.tlsVolume" -}}
{{- if .Values.kafka.tls.enabled }}
- name: kafka-tls
  secret:
    secretName: {{ include "streamrec.tlsSecretName" . }}
    defaultMode: 0440
{{- end }}
{{- end -}}
{{- define "streamrec.tlsMount" -}}
{{- if .Values.kafka.tls.enabled }}
- name: kafka-tls
  mountPath: /etc/streamrec/tls
  readOnly: true
{{- end }}
{{- end -}}

{{- define "streamrec.registryClaim" -}}
{{- .Values.registry.existingClaim | default (printf "%s-registry" (include "streamrec.fullname" .)) -}}
{{- end -}}

{{/* Checks that stop a wrong install before it starts. */}}
{{- define "streamrec.validate" -}}
{{- if gt (int .Values.worker.replicas) (int .Values.kafka.eventsPartitions) }}
{{- fail (printf "worker.replicas (%d) is more than kafka.eventsPartitions (%d): the extra workers would hold no partition" (int .Values.worker.replicas) (int .Values.kafka.eventsPartitions)) }}
{{- end }}
{{- if not (has .Values.kafka.securityProtocol (list "PLAINTEXT" "SSL" "SASL_PLAINTEXT" "SASL_SSL")) }}
{{- fail (printf "kafka.securityProtocol must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, got %s" .Values.kafka.securityProtocol) }}
{{- end }}
{{- if and (hasPrefix "SASL" .Values.kafka.securityProtocol) (not (include "streamrec.useSecret" .)) }}
{{- fail "kafka.securityProtocol is SASL: set secrets.saslUsername/saslPassword or secrets.existingSecret" }}
{{- end }}
{{- if and .Values.kafka.tls.enabled (not .Values.kafka.tls.existingSecret) (not .Values.kafka.tls.ca) }}
{{- fail "kafka.tls.enabled: set kafka.tls.existingSecret or kafka.tls.ca (PEM)" }}
{{- end }}
{{- end -}}
