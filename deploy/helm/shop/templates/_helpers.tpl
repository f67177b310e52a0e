{{/* Names: <release>-<service>, or the release name alone when it already says "shop". */}}
{{- define "shop.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of one component's objects and pods: its selector and the release's. (dict "root" $ "name" n) */}}
{{- define "shop.labels" -}}
{{ include "shop.selector" . }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
app.kubernetes.io/part-of: shop
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
{{- end -}}

{{/* Selector labels of one component; call with (dict "root" $ "name" "wallet"). */}}
{{- define "shop.selector" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "shop.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "shop.secret" -}}
{{- required "secrets.existingSecret: name the Secret that holds the shop's keys and passwords (README, On Kubernetes)" .Values.secrets.existingSecret -}}
{{- end -}}

{{/* One service's settings: serviceDefaults overlaid with services.<name>. (dict "root" $ "name" n) */}}
{{- define "shop.service" -}}
{{- $cfg := index .root.Values.services .name -}}
{{- toYaml (mergeOverwrite (deepCopy .root.Values.serviceDefaults) (deepCopy $cfg)) -}}
{{- end -}}

{{/* Pods a service may have at once: its most replicas plus the rollout's surge pod. */}}
{{- define "shop.maxPods" -}}
{{- $most := ternary .autoscaling.maxReplicas .replicaCount .autoscaling.enabled -}}
{{- add $most 1 -}}
{{- end -}}

{{/* Connections one process may open: its pool at full stretch, the relay's lock connection
and the LISTEN connection (order and coupon; counted for all, to be safe). */}}
{{- define "shop.connectionsPerProcess" -}}
{{- add .pool.size 2 -}}
{{- end -}}

{{/* Environment of a service's containers and its migration job: the role's password first,
so that SHOP_DATABASE_URL can use it through Kubernetes' $(VAR) expansion. It must be
URL-safe, as compose requires (16+ characters of [A-Za-z0-9._~-]). */}}
{{- define "shop.databaseEnv" -}}
{{- $svc := .svc -}}
{{- $secret := dict "name" (include "shop.secret" .root) "key" (printf "SHOP_%s_DB_PASSWORD" (upper $svc.database)) -}}
{{- $secret = mergeOverwrite $secret ($svc.passwordSecret | default dict) -}}
- name: SHOP_SERVICE_NAME
  value: {{ .name | quote }}
- name: DATABASE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret.name | quote }}
      key: {{ $secret.key | quote }}
- name: SHOP_DATABASE_URL
  value: {{ printf "postgresql+asyncpg://shop_%s:$(DATABASE_PASSWORD)@%s:%v/%s" $svc.database (required "postgres.host: the PostgreSQL server's address (CloudNativePG: <cluster>-rw)" .root.Values.postgres.host) .root.Values.postgres.port $svc.database | quote }}
{{- end -}}

{{/* A credential from the shop's Secret, as the variable of the same name. */}}
{{- define "shop.secretEnv" -}}
- name: {{ .key }}
  valueFrom:
    secretKeyRef:
      name: {{ include "shop.secret" .root | quote }}
      key: {{ .key }}
{{- end -}}

{{/* Non-root, read-only, no privileges: what a restricted Pod Security Standard admits. */}}
{{- define "shop.podSecurity" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "shop.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/* The gateway's server line for a service: its Service, or, when the service is disabled,
an address marked down, so that nginx still starts and its routes answer 503. */}}
{{- define "shop.upstream" -}}
{{- if (index .root.Values.services .name).enabled -}}
server {{ include "shop.fullname" .root }}-{{ .name }}:8000;
{{- else -}}
server 127.0.0.1:9 down;
{{- end -}}
{{- end -}}
