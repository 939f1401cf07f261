"""The Kubernetes edge: client, errors, reads and writes. Nothing above this package sees ApiException."""
