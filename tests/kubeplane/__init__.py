"""A real Kubernetes control plane for the integration tests (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok fake nodes), as a pytest plugin.

Test support only: nothing in ``responder/`` may import it.
"""
