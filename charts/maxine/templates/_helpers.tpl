{{/* Chart name, truncated for label values. */}}
{{- define "maxine.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: release-chart unless the release name holds the chart name. */}}
{{- define "maxine.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "maxine.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "maxine.selectorLabels" -}}
app.kubernetes.io/name: {{ include "maxine.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "maxine.labels" -}}
helm.sh/chart: {{ include "maxine.chart" . }}
{{ include "maxine.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "maxine.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "maxine.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding the credentials: the user's, or the generated one. */}}
{{- define "maxine.secretName" -}}
{{- default (include "maxine.fullname" .) .Values.auth.existingSecret }}
{{- end }}

{{- define "maxine.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Replicas: local mode always one (the state file is not shared). */}}
{{- define "maxine.replicas" -}}
{{- if eq .Values.mode "local" }}1{{ else }}{{ .Values.replicaCount }}{{ end }}
{{- end }}

{{/* Whether the pods mount a PVC on /data. */}}
{{- define "maxine.pvc" -}}
{{- if and (eq .Values.mode "local") .Values.persistence.enabled }}true{{ end }}
{{- end }}

{{/* The image's binary, used by exec probes. */}}
{{- define "maxine.binary" -}}/usr/local/bin/maxine{{- end }}

{{/* The health endpoint's GET probe on the admin port. */}}
{{- define "maxine.httpProbe" -}}
httpGet:
  path: /api/actuator/health
  port: admin
{{- end }}

{{/* `maxine health --allow-store-down`: alive, and DOWN at most because Redis is unreachable. */}}
{{- define "maxine.execProbe" -}}
exec:
  command:
    - {{ include "maxine.binary" . }}
    - health
    - --allow-store-down
{{- end }}
