"""cluster: what the engine reads from Kubernetes (Argo CD sync state); it never writes there."""
