{{/* Chart name. */}}
{{- define "mlrollout.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: <release>-mlrollout, shortened to the release name when it already says mlrollout. */}}
{{- define "mlrollout.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of cluster-scoped objects: unique per release and namespace. */}}
{{- define "mlrollout.clusterName" -}}
{{- printf "%s-%s" (include "mlrollout.fullname" .) .Release.Namespace | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mlrollout.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mlrollout.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mlrollout.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Labels of every object, without the component. */}}
{{- define "mlrollout.commonLabels" -}}
helm.sh/chart: {{ include "mlrollout.chart" . }}
app.kubernetes.io/name: {{ include "mlrollout.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mlrollout
{{- end -}}

{{- define "mlrollout.labels" -}}
{{ include "mlrollout.commonLabels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "mlrollout.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mlrollout.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "mlrollout.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Namespaces where the Jobs' ServiceAccount lives: the watched ones, or jobs.namespaces, or the release's. */}}
{{- define "mlrollout.jobNamespaces" -}}
{{- $ns := .Values.watchNamespaces -}}
{{- if not $ns -}}{{- $ns = .Values.jobs.namespaces -}}{{- end -}}
{{- if not $ns -}}{{- $ns = list .Release.Namespace -}}{{- end -}}
{{- $ns | uniq | toJson -}}
{{- end -}}

{{/*
Namespaced rules of the operator: its own resource, the children it manages, read-only Pods, Events.
*/}}
{{- define "mlrollout.namespacedRules" -}}
# Exactly the verbs the operator's code (and Kopf) uses: tests/charts derives them from the source.
- apiGroups: ["mlrollout.io"]
  resources: ["modeldeployments"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["mlrollout.io"]
  resources: ["modeldeployments/status"]
  verbs: ["patch"]
# Children carry an ownerReference with blockOwnerDeletion, which needs update on finalizers.
- apiGroups: ["mlrollout.io"]
  resources: ["modeldeployments/finalizers"]
  verbs: ["update"]
# Every child is also watched (list + watch, mlrollout.handlers.children.WATCHED): its changes wake
# the owner's reconcile instead of a timer.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["create", "list", "watch", "patch", "delete"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["create", "get", "list", "watch", "patch", "delete"]
# Gate Jobs: applied (server-side apply: create + patch), read back, deleted when superseded; their
# pods are listed for the termination message that carries the result.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["create", "get", "list", "watch", "patch", "delete"]
# The monitor's CronJob and its config, the serving pods' live config: server-side apply (create +
# patch), read back, delete; watched like every child (the operator reads them from its watch).
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["create", "get", "list", "watch", "patch", "delete"]
- apiGroups: ["batch"]
  resources: ["cronjobs"]
  verbs: ["create", "get", "list", "watch", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
# Read only: a Deployment an HPA scales gets no replica count from the operator.
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["list"]
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create"]
{{- if .Values.rbac.gatewayAPI }}
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["get", "update"]
{{- end }}
{{- if .Values.rbac.istio }}
- apiGroups: ["networking.istio.io"]
  resources: ["virtualservices"]
  verbs: ["get", "update"]
{{- end }}
{{- if .Values.peering.enabled }}
# Kopf's peering (the operator creates its object at start: mlrollout.handlers.peering).
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["create", "get", "list", "watch", "patch"]
{{- end }}
{{- end -}}
