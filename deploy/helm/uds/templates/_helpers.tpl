{{- define "uds.labels" -}}
app.kubernetes.io/name: uds
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{- define "uds.env" -}}
{{- range $k, $v := .Values.env }}
- name: {{ $k }}
  value: {{ $v | quote }}
{{- end }}
- name: UDS_DATA_DIR
  value: /var/lib/uds
{{- end }}

{{- define "uds.volumes" -}}
- name: signing-key
  secret:
    secretName: {{ .Values.signingKeySecret }}
    defaultMode: 0400
    items: [{key: signing.jwk, path: signing.jwk}]
{{- end }}
