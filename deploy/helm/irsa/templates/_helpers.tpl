{{/* Names, labels, images and ARNs shared by the templates. */}}

{{- define "irsa.fieldNs" -}}{{ .Values.env.namespace.field }}{{- end }}
{{- define "irsa.computeNs" -}}{{ .Values.env.namespace.compute }}{{- end }}
{{- define "irsa.platformNs" -}}{{ .Values.env.namespace.platform }}{{- end }}

{{/* Prefix of the cluster-scoped objects, unique per installation. */}}
{{- define "irsa.clusterName" -}}{{ .Values.env.name }}-{{ .Values.env.namespace.field }}{{- end }}

{{- define "irsa.labels" -}}
app.kubernetes.io/name: irsa
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "irsa.selectorLabels" -}}
app.kubernetes.io/name: irsa
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{- define "irsa.serverImage" -}}
{{ .Values.image.repository }}/{{ .Values.image.serverContainer }}:{{ .Values.image.serverAppVersion | default .Chart.AppVersion }}
{{- end }}

{{- define "irsa.clientImage" -}}
{{ .Values.image.repository }}/{{ .Values.image.clientContainer }}:{{ .Values.image.clientAppVersion | default .Values.image.serverAppVersion | default .Chart.AppVersion }}
{{- end }}

{{- define "irsa.partition" -}}{{ if .Values.env.govcloud }}aws-us-gov{{ else }}aws{{ end }}{{- end }}

{{- define "irsa.serverRoleArn" -}}
arn:{{ include "irsa.partition" . }}:iam::{{ .Values.env.eks_aws_account }}:role/{{ .Values.env.eks_service_role_name }}
{{- end }}

{{/* The mapping endpoint the sidecars call. */}}
{{- define "irsa.endpoint" -}}
https://{{ .Values.env.service }}.{{ .Values.env.namespace.field }}/map_iam_roles_to_pod_sa
{{- end }}

{{/* Secret in the compute namespace whose ca.crt workspace pods mount. */}}
{{- define "irsa.caCopySecret" -}}{{ .Values.env.name }}-ca{{- end }}
