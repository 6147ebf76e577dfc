"""A KServe ModelServer serving a scikit-learn model the way KServe's sklearnserver does
(`model.predict` on the v1 `instances`), loaded from the same MLflow skops artifact.

Runs in a separate virtualenv (kserve pins its own dependency versions); started by bench.serving.
"""

from __future__ import annotations

import argparse
from typing import Any

import kserve
import numpy as np
import skops.io


class SKLearnModel(kserve.Model):  # type: ignore[misc]
    def __init__(self, name: str, path: str, trusted: list[str]) -> None:
        super().__init__(name)
        self.path = path
        self.trusted = trusted
        self.model: Any = None
        self.ready = False

    def load(self) -> bool:
        self.model = skops.io.load(self.path, trusted=self.trusted)
        self.ready = True
        return self.ready

    def predict(self, payload: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        instances = np.array(payload["instances"])
        return {"predictions": self.model.predict(instances).tolist()}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model-file", required=True)
    p.add_argument("--name", default="model")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--trusted", default="sklearn.tree._tree.Tree")
    a = p.parse_args()
    model = SKLearnModel(a.name, a.model_file, [t for t in a.trusted.split(",") if t])
    model.load()
    # Generous to the peer: no per-request latency log lines.
    kserve.ModelServer(
        http_port=a.port,
        grpc_port=a.port + 1,
        workers=a.workers,
        enable_grpc=False,
        enable_latency_logging=False,
    ).start([model])


if __name__ == "__main__":
    main()
