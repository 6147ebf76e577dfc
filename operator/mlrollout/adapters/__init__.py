"""Adapters: the only code that talks to the world (Kubernetes, the model registry, metrics, routers)."""
