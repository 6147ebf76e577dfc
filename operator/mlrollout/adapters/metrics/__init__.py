"""Metrics providers for analysis: Prometheus (prometheus-api-client)."""
