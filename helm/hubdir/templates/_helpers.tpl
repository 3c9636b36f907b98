{{/* The services this chart runs, each as a Deployment of its own binary. */}}
{{- define "hubdir.components" -}}
registry discovery connectivity federation
{{- end -}}

{{- define "hubdir.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "hubdir.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
hubdir.org/node: {{ .Values.nodeId | quote }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "discovery"). */}}
{{- define "hubdir.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "hubdir.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "hubdir.postgresSecret" -}}
{{- if .Values.postgres.existingSecret -}}
{{- .Values.postgres.existingSecret -}}
{{- else -}}
{{- printf "%s-postgres" (include "hubdir.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Checks that the values name what every pod needs. */}}
{{- define "hubdir.required" -}}
{{- $_ := required "nodeId is required: this node's id, the origin of the sites it publishes" .Values.nodeId -}}
{{- $_ := required "nodeKey.existingSecret is required: a Secret holding the node's signing key (docs/DEPLOY.md)" .Values.nodeKey.existingSecret -}}
{{- if not (or .Values.postgres.url .Values.postgres.existingSecret) -}}
{{- fail "postgres.existingSecret (or postgres.url) is required: the services run on PostgreSQL" -}}
{{- end -}}
{{- if and .Values.tls.enabled (not .Values.tls.existingSecret) -}}
{{- fail "tls.existingSecret is required when tls.enabled is true" -}}
{{- end -}}
{{- end -}}

{{/* The database URL, from its Secret. */}}
{{- define "hubdir.storeEnv" -}}
- name: HUBDIR_STORE__URL
  valueFrom:
    secretKeyRef:
      name: {{ include "hubdir.postgresSecret" . }}
      key: {{ .Values.postgres.secretKey }}
{{- end -}}

{{/* A TOML table and its sub-tables, from a map: (dict "path" "connectivity" "table" $map). */}}
{{- define "hubdir.tomlTable" -}}
{{- $tables := dict -}}
[{{ .path }}]
{{- range $key, $value := .table }}
{{- if kindIs "map" $value }}
{{- $_ := set $tables $key $value }}
{{- else }}
{{ $key }} = {{ toJson $value }}
{{- end }}
{{- end }}
{{- range $key, $value := $tables }}

{{ include "hubdir.tomlTable" (dict "path" (printf "%s.%s" $.path $key) "table" $value) }}
{{- end }}
{{- end -}}
