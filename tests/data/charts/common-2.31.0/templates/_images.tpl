{{/* registry/repository:tag, the global registry first when set. */}}
{{- define "common.images.image" -}}
{{- $registry := default .imageRoot.registry ((.global).imageRegistry) -}}
{{- printf "%s/%s:%s" $registry .imageRoot.repository (.imageRoot.tag | toString) -}}
{{- end -}}
