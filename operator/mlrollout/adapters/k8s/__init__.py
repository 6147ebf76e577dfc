"""Kubernetes: pure manifest builders and one executor that applies them with server-side apply."""
