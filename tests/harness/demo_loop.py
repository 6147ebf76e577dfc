"""The demo's closing act: the whole loop, with nobody touching it. Called by harness.demo with the
running control plane after the other acts:

    from harness.demo_loop import show_loop
    show_loop(cp, NS, mlflow.uri, RUNTIME_IMAGE)

A model trained on last year's customers serves ModelDeployment `loop`; customers of a new era
arrive through its Service (harness.churn_loop); the monitor's CronJob (every minute) flags drift; the
operator starts the built-in trainer; the new version passes its gates (ROC AUC, precision on
month-to-month contracts) and its canary; the monitor's next run, on the new version, finds no drift.
Every change of phase is printed as it happens, with its cause.
"""

from __future__ import annotations

import json
import time
from typing import Any

from harness.churn_loop import Timeline, customers, loop_data, loop_spec, register_first, row_maker
from harness.controlplane import REPO, ControlPlane
from harness.demo_support import md_status, plugin, say
from harness.load import Load
from harness.procs import eventually

NAME = "loop"
MODEL = "churn-loop"


def show_loop(cp: ControlPlane, ns: str, tracking_uri: str, image: str) -> None:
    started = time.monotonic()
    with loop_data() as data:
        say("The whole loop: drift noticed, model retrained, gated and rolled out, with nobody touching it")
        v1 = register_first(tracking_uri, MODEL, customers(1500, 1, "before"), data.reference)
        from mlflow.tracking import MlflowClient

        MlflowClient(tracking_uri).set_registered_model_alias(MODEL, "champion", v1)
        print(f"   {MODEL} version {v1}: trained on last year's customers, alias champion")
        spec = loop_spec(MODEL, tracking_uri, image, data)
        for key in ("monitoring", "retraining", "validation"):
            print(f"   spec.{key} = {json.dumps(spec[key])}"[:400])
        cp.kubectl("apply", "-k", str(REPO / "manifests" / "job-serviceaccount"), "-n", ns)
        body = {
            "apiVersion": "mlrollout.io/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": NAME, "namespace": ns},
            "spec": spec,
        }
        cp.kubectl("apply", "-f", "-", input=json.dumps(body))
        eventually(
            what=f"{NAME} Healthy on version {v1}",
            check=lambda: md_status(cp, NAME, ns).get("phase") == "Healthy",
            timeout=240,
        )
        from mlrollout.api.names import service_name

        svc = json.loads(cp.kubectl("get", "service", service_name(NAME), "-n", ns, "-o", "json").stdout)
        address = f"{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"

        say(
            "A price change brings new customers (tenure down 1.2 sd, spend up 1 sd): their requests "
            "reach the Service; from here on the operator acts alone (phase, versions, drift, training, why)"
        )
        with (
            Timeline(lambda: md_status(cp, NAME, ns), echo=True, period=1.0),
            Load(address, row=row_maker("after"), period=0.1, workers=1) as load,
        ):

            def promoted() -> str | None:
                status = md_status(cp, NAME, ns)
                stable = status.get("stableVersion")
                return str(stable) if status.get("phase") == "Healthy" and stable not in (None, v1) else None

            v2 = str(eventually(what="the retrained version promoted", check=promoted, timeout=900))

            def clean() -> bool:
                monitoring = md_status(cp, NAME, ns).get("monitoring") or {}
                return monitoring.get("version") == v2 and monitoring.get("verdict") == "NoDrift"

            eventually(what=f"the monitor's run on version {v2}", check=clean, timeout=180)
        print(f"   {sum(load.counts().values())} requests sent through the Service during the loop")

        say(f"Healthy on version {v2}, the drift verdict cleared by the monitor's run on it")
        print(cp.kubectl("get", "md", NAME, "-n", ns).stdout.rstrip())
        status = md_status(cp, NAME, ns)
        retraining = status.get("retraining") or {}
        print(f"   status.retraining: {retraining.get('trigger')}: {retraining.get('reason')}")
        drift: dict[str, Any] = next((c for c in status.get("conditions") or [] if c["type"] == "Drift"), {})
        print(f"   condition Drift: {drift.get('reason')}: {drift.get('message')}")
        tags = MlflowClient(tracking_uri).get_model_version(MODEL, v2).tags
        for key in (
            "mlrollout.parent_version",
            "mlrollout.trigger",
            "mlrollout.gate",
            "mlrollout.skops_types",
        ):
            print(f"   MLflow {MODEL} v{v2} {key} = {tags.get(key)}"[:200])
        plugin(cp, NAME, ns, "history")
        events = cp.kubectl("get", "events", "-n", ns, "--field-selector", f"involvedObject.name={NAME}")
        print(events.stdout.rstrip())
        print(f"   the loop act took {time.monotonic() - started:.0f} s")
        cp.kubectl("delete", "modeldeployment", NAME, "-n", ns, "--wait=true", "--timeout=60s")
