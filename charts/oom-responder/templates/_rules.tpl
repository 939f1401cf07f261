{{/*
What the playbooks need in the namespaces the service acts in; no more. Each rule names the code that uses
it; tests/deploy compares these rules with responder/kube/permissions.py, and shows against the real API
server that each rule is needed.
*/}}
{{- define "oom-responder.workloadRules" -}}
# get: the alerted pod (fetching.locate). create: raise_memory's admission pre-check, a server-side dry-run
# pod create (dryRun=All persists nothing) that lets ResourceQuota and LimitRange answer before the workload
# is patched. RBAC cannot limit create to dry runs; patching a workload's pod template is as strong anyway.
# list: the workload's pods (by its selector) at each verdict horizon after a mitigation (runbook Step 6).
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, create]
# capture_diagnostics reads the OOM-killed container's previous log (runbook Step 4).
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
{{- if ((.Values.diagnostics | default dict).heapDump | default dict).enabled }}
# heap_dump runs the runtime's dump command in the container (runbook Step 5). The websocket upgrade is a GET
# that the API server (>= 1.35) authorizes as both get and create.
- apiGroups: [""]
  resources: [pods/exec]
  verbs: [get, create]
{{- end }}
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
# capture_diagnostics attaches the pod's recent Events; verification of a StatefulSet's or DaemonSet's rollout
# reads its FailedCreate Events, where quota and LimitRange refusals of new pods show up (a Deployment reports
# them in its ReplicaFailure condition).
- apiGroups: [""]
  resources: [events]
  verbs: [list]
# get/patch: the mitigation and its ledger annotation in one write (raise_memory, scale_out on spec.replicas,
# rollout_restart, the ledger entry of evict_pod). list: finding the workload by its ledger when the alerted
# pod is gone and its name does not lead to it.
- apiGroups: [apps]
  resources: [deployments, statefulsets, daemonsets]
  verbs: [get, list, patch]
# Pod -> ReplicaSet -> Deployment; a gone pod's ReplicaSet, named in the pod's name, confirms its Deployment.
- apiGroups: [apps]
  resources: [replicasets]
  verbs: [get]
# A Job's pod: the Job is the target and carries the ledger of an eviction.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, patch]
# scale_out raises the minReplicas of an HPA that targets the workload instead of fighting it; finding it
# needs list.
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [list, patch]
{{- if .Values.rbac.verticalPodAutoscalers }}
# raise_memory leaves workloads a VPA manages alone (check_vpa).
- apiGroups: [autoscaling.k8s.io]
  resources: [verticalpodautoscalers]
  verbs: [list]
{{- end }}
# Every mitigation is announced as a Kubernetes Event on the workload.
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create]
{{- end }}
