"""Pure drift statistics: no I/O, no Kubernetes, no Evidently."""
