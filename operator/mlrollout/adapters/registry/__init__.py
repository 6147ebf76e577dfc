"""The model registry (MLflow): resolve aliases to pinned versions; later, move aliases and tag versions."""
