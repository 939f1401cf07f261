"""oom-responder: guarded emergency mitigations for Kubernetes memory incidents."""

__version__ = "0.1.0"
