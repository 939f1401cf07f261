"""The Kubernetes client edge on the real control plane."""
