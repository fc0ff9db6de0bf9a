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

{{/*
The server pods' selector: the current chart's (1.8), which selects its Deployment's pods by
`app: <env.name>` alone. A Deployment's selector is immutable, so `helm upgrade` of a 1.8 release
works only with exactly this selector; the Service, NetworkPolicy and PodDisruptionBudget use it too.
*/}}
{{- define "irsa.selectorLabels" -}}
app: {{ .Values.env.name }}
{{- end }}

{{/*
The server pods' labels: the selector; nucleus-client, because the platform's network policies admit
only pods labelled as its clients to its API (DOMINO_USER_HOST); and the chart's own.
*/}}
{{- define "irsa.podLabels" -}}
{{ include "irsa.selectorLabels" . }}
nucleus-client: "true"
app.kubernetes.io/name: irsa
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{/*
The server's NO_PROXY: the platform namespace (its API, DOMINO_USER_HOST) as the current chart
sets it, the Kubernetes API server (Deno's HTTP client sends every request, the ConfigMap and pod
reads too, through HTTPS_PROXY unless NO_PROXY names the host; the kubelet expands the variable),
then the admin's env.proxy.no_proxy.
*/}}
{{- define "irsa.noProxy" -}}
{{- $hosts := list (printf ".%s" .Values.env.namespace.platform) "$(KUBERNETES_SERVICE_HOST)" -}}
{{- with .Values.env.proxy.no_proxy }}{{ $hosts = append $hosts . }}{{ end -}}
{{ join "," $hosts }}
{{- end }}

{{/*
Refuses the images of the current IRSA service. A values file of its chart (1.8) reused unchanged
names them (image.clientContainer irsa-client, tags such as v1.8.0-release), and those images
cannot run irsa's arguments: a pod that starts them would crash-loop or, worse, serve the old API.
irsa is one image for both roles, so the client image must be the server's.
*/}}
{{- define "irsa.checkImages" -}}
{{- $i := .Values.image -}}
{{- $serverTag := $i.serverAppVersion | default .Chart.AppVersion -}}
{{- $clientTag := $i.clientAppVersion | default $serverTag -}}
{{- $old := or (ne $i.clientContainer $i.serverContainer) (ne $clientTag $serverTag) (regexMatch "-(release|patch)$" $serverTag) -}}
{{- if $old -}}
{{- fail (printf "Cannot run image %s/%s:%s (server) and %s/%s:%s (client), which are not irsa's: irsa runs both roles from one image, and tags ending in -release or -patch are those of the current IRSA service (as its 1.8 values file sets them), whose images cannot run irsa's arguments. Set image.repository, image.serverContainer and image.clientContainer to irsa's image (the same name for both), and image.serverAppVersion and image.clientAppVersion to its tag, or leave both empty for the chart's appVersion %s" $i.repository $i.serverContainer $serverTag $i.repository $i.clientContainer $clientTag .Chart.AppVersion) -}}
{{- end -}}
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

{{/* Secret in the field namespace whose `key` seals the replicas' hand-off (handoff-key-secret.yaml). */}}
{{- define "irsa.handoffKeySecret" -}}{{ .Values.server.handoffKeySecret | default (printf "%s-handoff-key" .Values.env.name) }}{{- end }}
