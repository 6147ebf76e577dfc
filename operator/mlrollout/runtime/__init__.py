"""The model runtime: serves MLflow models over HTTP (MLflow scoring protocol, Open Inference
Protocol v2), with micro-batching, Prometheus metrics, an inference log and shadow mirroring.

Must not import kopf or kubernetes: it runs inside the model image."""
