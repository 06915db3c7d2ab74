{{/* The chart's name, overridable with nameOverride. */}}
{{- define "opal-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's full name, used for every object: the release name when it already contains the
chart name, otherwise "<release>-<chart>". Truncated to 63 characters (a DNS label).
*/}}
{{- define "opal-operator.fullname" -}}
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

{{- define "opal-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "opal-operator.labels" -}}
helm.sh/chart: {{ include "opal-operator.chart" . }}
{{ include "opal-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the operator's pods; never change them (Deployment selectors are immutable). */}}
{{- define "opal-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "opal-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "opal-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "opal-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The namespace whose AccessPolicies shape the plan and which holds the leader Lease. */}}
{{- define "opal-operator.operatorNamespace" -}}
{{- default .Release.Namespace .Values.config.operatorNamespace }}
{{- end }}

{{- define "opal-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The operator's config file: the `config` value with the settings the chart owns filled in:
the operator namespace, the HR source picked by `hris.source`, and the listen address (always
the container's `http` port).
*/}}
{{- define "opal-operator.configFile" -}}
{{- $config := deepCopy .Values.config }}
{{- $_ := set $config "operatorNamespace" (include "opal-operator.operatorNamespace" .) }}
{{- $source := .Values.hris.source }}
{{- $_ := set $config "hris" (merge (dict "source" $source) (deepCopy (get .Values.hris $source))) }}
{{- $server := deepCopy (default (dict) $config.server) }}
{{- $_ := set $server "listen" "0.0.0.0:8080" }}
{{- $_ := set $config "server" $server }}
{{- toYaml $config }}
{{- end }}

{{/*
RBAC rules for the custom resources and Events, shared by the
ClusterRole (every namespace) and the Role (watchNamespace). Only the verbs the operator uses.
*/}}
{{- define "opal-operator.watchRules" -}}
# Reflectors list and watch the four kinds; the leader patches them (server-side apply) to
# add and remove its finalizers. Nothing is ever updated wholesale or deleted.
- apiGroups: [opal-operator.io]
  resources: [rolemappings, accesspolicies, reviewschedules]
  verbs: [get, list, watch, patch]
# The inbound Splunk/Datadog alert webhooks create Lockdowns (AccessPolicy incidentResponse).
- apiGroups: [opal-operator.io]
  resources: [lockdowns]
  verbs: [get, list, watch, patch, create]
# Conditions, counts and lockdown records are written to the status subresource.
- apiGroups: [opal-operator.io]
  resources: [rolemappings/status, accesspolicies/status, reviewschedules/status, lockdowns/status]
  verbs: [get, patch]
# Every grant/revoke batch, breaker trip and lockdown is reported as an Event in the object's
# namespace; repeats of one Event are patched into a series.
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end }}

{{/*
Names of the Secrets the config reads through the Kubernetes API ({secretKeyRef: {name, key}},
which notification channels accept), one per line; walks the whole config.
*/}}
{{- define "opal-operator.secretKeyRefNames" -}}
{{- if kindIs "map" . }}
{{- range $key, $value := . }}
{{- if and (eq $key "secretKeyRef") (kindIs "map" $value) }}
{{ $value.name }}
{{- else }}
{{ include "opal-operator.secretKeyRefNames" $value }}
{{- end }}
{{- end }}
{{- else if kindIs "slice" . }}
{{- range . }}
{{ include "opal-operator.secretKeyRefNames" . }}
{{- end }}
{{- end }}
{{- end }}
