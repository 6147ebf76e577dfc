"""Metrics providers for analysis: Prometheus."""
