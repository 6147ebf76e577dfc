"""The seed's telecom churn scenario for the closed loop, shared by the integration test and the demo.

Two eras of customers. "before": the population the first model was trained on. "after": a price
change brought many new customers (tenure down 1.2 sd, monthly spend up 1 sd) and made churn depend
on spend too. Live traffic from the "after" era drifts against the first model's reference, and a
model retrained on "after" data passes gates the first model would fail (ROC AUC about 0.96 against
0.85 on an "after" holdout; precision on month-to-month contracts about 0.91 against 0.77).

Everything lives on local paths under /var/tmp: the pods the harness runs see the host's files, but
their /tmp is an emptyDir. Features are harness.models.FEATURES, so harness.load.Load can send rows.
"""

from __future__ import annotations

import random
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from harness.models import FEATURES, register_fitted

Era = Literal["before", "after"]
TARGET = "churned"
SEGMENT = "contract == 'month-to-month'"
AUC_FLOOR = 0.9
SEGMENT_PRECISION_FLOOR = 0.85
TENURE_SHIFT, SPEND_SHIFT = -1.2, 1.0
CANARY = [{"setWeight": 50}, {"pause": {"duration": "10s"}}]
EVERY_MINUTE = "* * * * *"  # the shortest cron schedule: the monitor runs for real, by itself


def customers(n: int, seed: int, era: Era) -> Any:
    """Features, the contract (a segment, not a model input) and the churn label."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=FEATURES)
    z = x["support_calls"] - 0.5 * x["tenure"]
    if era == "after":
        x["tenure"] += TENURE_SHIFT
        x["monthly_spend"] += SPEND_SHIFT
        z = x["support_calls"] - 0.5 * x["tenure"] + 0.8 * (x["monthly_spend"] - SPEND_SHIFT) - 0.3
    churned = (z + rng.normal(scale=0.5, size=n) > 0).astype(int)
    contract = np.where(x["tenure"] + rng.normal(scale=0.5, size=n) < -0.5, "month-to-month", "one-year")
    return x.assign(contract=contract, **{TARGET: churned})


def row_maker(era: Era, benign_shift: float = 0.0) -> Callable[[random.Random], dict[str, float]]:
    """One live request's row for harness.load.Load; `benign_shift` moves age and monthly spend of
    "before" customers (half the columns: drift for the monitor; benign, since churn then did not
    depend on either, and the first model learned as much)."""
    tenure, spend = (TENURE_SHIFT, SPEND_SHIFT) if era == "after" else (0.0, benign_shift)
    age_shift = benign_shift

    def row(rng: random.Random) -> dict[str, float]:
        return {
            "tenure": round(rng.gauss(tenure, 1), 3),
            "monthly_spend": round(rng.gauss(spend, 1), 3),
            "support_calls": round(rng.gauss(0, 1), 3),
            "age": round(rng.gauss(age_shift, 1), 3),
        }

    return row


def label_of(row: dict[str, float]) -> int:
    """The "before" era's churn rule without noise: delayed ground truth for a benign-drift story."""
    return int(row["support_calls"] - 0.5 * row["tenure"] > 0)


def register_first(tracking_uri: str, name: str, frame: Any, reference: Path) -> str:
    """The first model (logistic regression, skops) on `frame`; its reference snapshot (inputs and
    predictions, as the runtime logs them) written to `reference`. Returns the version."""
    from sklearn.linear_model import LogisticRegression

    x = frame[FEATURES]
    model = LogisticRegression().fit(x, frame[TARGET])
    x.assign(prediction=model.predict(x)).to_parquet(reference, index=False)
    return register_fitted(tracking_uri, name, model, x)


@dataclass(frozen=True)
class LoopData:
    """The files of one loop: the first model's reference, the training set the data pipeline keeps
    fresh ("after" era), the gate's holdout, and the root of the inference logs."""

    root: Path

    @property
    def reference(self) -> Path:
        return self.root / "reference-v1.parquet"

    @property
    def dataset(self) -> Path:
        return self.root / "train.parquet"

    @property
    def holdout(self) -> Path:
        return self.root / "holdout.parquet"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def predictions(self, namespace: str, md: str) -> Path:
        return self.logs / namespace / md / "predictions"


@contextmanager
def loop_data() -> Iterator[LoopData]:
    root = Path("/var/tmp") / f"mlrollout-loop-{uuid.uuid4().hex[:8]}"
    data = LoopData(root)
    data.logs.mkdir(parents=True)
    customers(2000, 3, "after").to_parquet(data.dataset, index=False)
    customers(1500, 4, "after").to_parquet(data.holdout, index=False)
    try:
        yield data
    finally:
        shutil.rmtree(root, ignore_errors=True)


def loop_spec(
    model: str,
    tracking_uri: str,
    image: str,
    data: LoopData,
    *,
    drift_trigger: dict[str, Any] | None = None,
    performance: dict[str, Any] | None = None,
    canary_steps: list[dict[str, Any]] | None = None,
    analysis: dict[str, Any] | None = None,
    min_samples: int = 200,
) -> dict[str, Any]:
    """A ModelDeployment that closes the loop: monitored every minute, retrained on drift with the
    built-in trainer, the new version gated (ROC AUC, precision on month-to-month contracts) and
    rolled out by canary. No serving.trustedTypes: the operator trusts what the trainer recorded."""
    monitoring: dict[str, Any] = {
        "schedule": EVERY_MINUTE,
        "referenceUri": str(data.reference),
        "inferenceLogUri": str(data.logs),
        "drift": {"minSamples": min_samples, "window": "10m", "pValue": 0.01},
    }
    if performance is not None:
        monitoring["performance"] = performance
    spec: dict[str, Any] = {
        "model": {"name": model, "alias": "champion"},
        "registry": {"trackingUri": tracking_uri},
        "serving": {
            "image": image,
            "replicas": 1,
            # rows reach the log within a second, so each monitor run sees the traffic before it
            "env": [{"name": "MLROLLOUT_INFERENCE_LOG_ROTATE_SECONDS", "value": "1"}],
        },
        "validation": {
            "dataset": {"uri": str(data.holdout), "target": TARGET},
            "metrics": [
                {"name": "roc_auc", "min": AUC_FLOOR},
                {"name": "precision", "min": SEGMENT_PRECISION_FLOOR, "segment": SEGMENT},
            ],
            "timeout": "5m",
            "backoffLimit": 0,
        },
        "strategy": {"canary": {"steps": canary_steps or CANARY}},
        "monitoring": monitoring,
        "retraining": {
            "triggers": [{"drift": drift_trigger or {"cooldown": "1h", "minSamples": min_samples}}],
            "job": {
                "builtin": {
                    "estimator": "logistic_regression",
                    "target": TARGET,
                    "exclude": ["contract"],
                    "trials": 2,
                },
                "datasetUri": str(data.dataset),
                "timeout": "8m",
                "backoffLimit": 0,
            },
        },
    }
    if analysis is not None:
        spec["analysis"] = analysis
    return spec


def moment(status: dict[str, Any]) -> str:
    """One line of what the loop shows: phase, versions, weight, drift verdict, retraining, and why."""
    conditions = {c["type"]: c for c in status.get("conditions") or []}
    drift = conditions.get("Drift", {}).get("reason", "-")
    retraining = status.get("retraining") or {}
    training = retraining.get("state", "-")
    if retraining.get("trigger"):
        training += f" ({retraining['trigger']})"
    canary = status.get("canaryVersion")
    weights = status.get("weights") or {}
    versions = f"stable {status.get('stableVersion', '-')}" + (
        f", canary {canary} at {weights.get('canary', '?')}%" if canary else ""
    )
    why = conditions.get("Progressing", {}).get("message", "")
    return f"{status.get('phase', '-'):<12} {versions:<28} drift {drift:<16} retraining {training:<18} {why}"[
        :220
    ]


class Timeline:
    """Polls a ModelDeployment's status in the background; keeps every distinct `moment` (the demo
    prints them as they come, the test reads the phases the loop went through)."""

    def __init__(self, get: Callable[[], dict[str, Any]], echo: bool = False, period: float = 0.5) -> None:
        import threading

        self.get, self.echo, self.period = get, echo, period
        self.moments: list[str] = []
        self.statuses: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Timeline:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def phases(self) -> list[str]:
        out: list[str] = []
        for s in self.statuses:
            if s.get("phase") and (not out or out[-1] != s["phase"]):
                out.append(str(s["phase"]))
        return out

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                status = self.get()
            except Exception:  # an API hiccup: the next poll tells
                continue
            line = moment(status)
            if self.moments and self.moments[-1] == line:
                continue
            self.moments.append(line)
            self.statuses.append(status)
            if self.echo:
                print(f"   {line}", flush=True)
