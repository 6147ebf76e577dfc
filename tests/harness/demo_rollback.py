"""`make demo`, second act: a bad release rolled back by itself, with the reason on screen.

After the healthy canary of harness.demo, a new version with a bug (it raises on part of its
inputs: about a third of customers) becomes the challenger. Users keep sending requests to the
Service; the canary takes its share, Prometheus sees the 5xx of the candidate's track, the analysis
fails, and the operator returns all traffic to the stable version without anyone's help: the
champion alias stays where it was and the version is tagged rolled_back with the reason.
"""

from __future__ import annotations

import time
from typing import Any

from harness.controlplane import ControlPlane
from harness.demo_support import NS, condition, md_status, plugin, say
from harness.load import Load
from harness.models import register_faulty, set_alias
from harness.procs import HarnessError

MD = "churn"
MODEL = "churn-classifier"


def _follow(cp: ControlPlane, version: str, load: Load, timeout: float) -> dict[str, Any]:
    """Print each change of phase, weights and analysis until `version` is rolled back."""
    last = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = md_status(cp, MD)
        rollout = st.get("rollout") or {}
        run = rollout.get("analysis") or {}
        errors = load.counts().get(500, 0)
        line = (
            f"   phase: {st.get('phase')}  stable={st.get('stableVersion')}  canary={st.get('canaryVersion')}"
            f"  weight={(st.get('weights') or {}).get('canary')}%"
            + (f"  analysis {run.get('verdict')} {run.get('taken', 0)}/{run.get('count')}" if run else "")
            + f"  (users got {errors} errors so far)"
        )
        if line != last:
            print(line)
            last = line
        if st.get("phase") == "RolledBack" and rollout.get("abortedVersion") == version:
            return st
        time.sleep(0.5)
    raise HarnessError(f"demo: the bad version {version} was not rolled back in {timeout:.0f}s")


def bad_candidate_rolled_back(
    cp: ControlPlane, tracking_uri: str, address: str, timeout: float = 240
) -> None:
    """Register a faulty release as the challenger and show the operator rolling it back by itself.

    `address` is the ModelDeployment's Service (ClusterIP:port) that the load is sent to.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    champion = client.get_model_version_by_alias(MODEL, "champion").version
    say("A bad release arrives: a model that raises on a third of its inputs (alias challenger -> it)")
    version = register_faulty(tracking_uri, MODEL, "errors")
    set_alias(tracking_uri, MODEL, "challenger", version)
    print(f"   registered {MODEL} version {version}; champion is version {champion}")
    with Load(address, seed=3) as load:
        started = time.monotonic()
        st = _follow(cp, version, load, timeout)
        took = time.monotonic() - started
        time.sleep(2)  # users keep being served, by stable alone now
    counts = load.counts()
    print(
        f"   {sum(counts.values())} requests sent to the Service: {counts.get(200, 0)} answered, "
        f"{counts.get(500, 0)} failed (all while version {version} had its canary share); "
        f"rolled back {took:.0f} s after it became the challenger"
    )
    say("Why: the reason is in the status, the Event, and on the model version in MLflow")
    print(f"   condition Progressing: {condition(st, 'Progressing').get('reason')}")
    print(f"     {condition(st, 'Progressing').get('message')}")
    for args in (("status",), ("history",)):
        plugin(cp, MD, NS, *args)
    r = cp.kubectl(
        "get",
        "events",
        "-n",
        NS,
        "--field-selector",
        "reason=CandidateRolledBack",
        "-o",
        "custom-columns=MESSAGE:.message",
    )
    print("   Event CandidateRolledBack:\n" + "\n".join("     " + x for x in r.stdout.splitlines()[1:]))
    tags = client.get_model_version(MODEL, version).tags
    now_champion = client.get_model_version_by_alias(MODEL, "champion").version
    print(
        f"   MLflow: alias champion -> {now_champion} (unchanged); version {version} tagged "
        f"{tags.get('mlrollout.rollout')}: {tags.get('mlrollout.rollout.reason')}"
    )
    if now_champion != champion or tags.get("mlrollout.rollout") != "rolled_back":
        raise HarnessError("demo: the rollback did not leave the registry as expected")
