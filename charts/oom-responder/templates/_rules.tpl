{{/*
What the playbooks need in the namespaces the service acts in; no more. Keep in step with
responder/kube/permissions.py (tests/deploy compares the two).
*/}}
{{- define "oom-responder.workloadRules" -}}
# Read the alerting pod; list pods of a workload to verify a rollout and to pick the pod to evict.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list]
# evict_pod (policy/v1 Eviction, which honours PodDisruptionBudgets).
- apiGroups: [""]
  resources: [pods/eviction]
  verbs: [create]
{{- if .Values.rbac.podResize }}
# raise_memory with resize_in_place: the pod `resize` subresource (Kubernetes >= 1.33).
- apiGroups: [""]
  resources: [pods/resize]
  verbs: [patch]
{{- end }}
# Pod -> ReplicaSet -> Deployment; DaemonSets are read to report that they cannot be scaled.
- apiGroups: [apps]
  resources: [replicasets, daemonsets]
  verbs: [get]
# raise_memory and rollout_restart patch the pod template together with the ledger annotation.
- apiGroups: [apps]
  resources: [deployments, statefulsets]
  verbs: [get, patch]
# scale_out goes through the scale subresource.
- apiGroups: [apps]
  resources: [deployments/scale, statefulsets/scale]
  verbs: [get, patch]
# scale_out raises an HPA's minReplicas instead of fighting it; finding the HPA that targets a workload
# needs list.
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, patch]
{{- if .Values.rbac.verticalPodAutoscalers }}
# raise_memory leaves workloads a VPA manages alone (check_vpa).
- apiGroups: [autoscaling.k8s.io]
  resources: [verticalpodautoscalers]
  verbs: [get, list]
{{- end }}
# Every mitigation is announced as a Kubernetes Event on the workload.
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create]
{{- end }}
