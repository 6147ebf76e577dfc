"""Kopf wiring: the only layer that imports kopf. Every handler funnels into reconcile()."""
