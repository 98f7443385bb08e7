{{/*
Fails when an image is not one the chart's `images` annotation lists, unless
global.security.allowInsecureImages is true (the catalog's Bitnami entries set it for bitnamilegacy).
*/}}
{{- define "common.errors.insecureImages" -}}
{{- $allowed := (((.context.Values.global).security).allowInsecureImages) -}}
{{- $listed := default "" .context.Chart.Annotations.images -}}
{{- $substituted := list -}}
{{- range .images -}}
{{- $name := printf "%s/%s" (default .registry ((($.context.Values).global).imageRegistry)) .repository -}}
{{- if not (contains $name $listed) -}}
{{- $substituted = append $substituted $name -}}
{{- end -}}
{{- end -}}
{{- if and $substituted (not $allowed) -}}
{{- fail (printf "\nERROR: Original containers have been substituted: %s. Set global.security.allowInsecureImages=true to accept them." (join ", " $substituted)) -}}
{{- end -}}
{{- end -}}
