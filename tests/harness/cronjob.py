"""Start a CronJob's Job now, as `kubectl create job --from=cronjob/NAME` does, and wait for it."""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client

from harness.procs import HarnessError


def trigger(api: client.ApiClient, namespace: str, cronjob: str, suffix: str) -> str:
    """A Job named `<cronjob>-<suffix>` from the CronJob's jobTemplate, owned by the CronJob."""
    batch: Any = client.BatchV1Api(api)
    cron = batch.read_namespaced_cron_job(cronjob, namespace)
    template: dict[str, Any] = api.sanitize_for_serialization(cron.spec.job_template)  # type: ignore[no-untyped-call]
    meta = template.get("metadata") or {}
    name = f"{cronjob}-{suffix}"
    body = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "labels": meta.get("labels") or {},
            "annotations": {**(meta.get("annotations") or {}), "cronjob.kubernetes.io/instantiate": "manual"},
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": cron.metadata.name,
                    "uid": cron.metadata.uid,
                    "controller": True,
                }
            ],
        },
        "spec": template["spec"],
    }
    batch.create_namespaced_job(namespace, body)
    return name


def wait(api: client.ApiClient, namespace: str, job: str, timeout: float = 300) -> bool:
    """True when the Job succeeded, False when it failed; raises when it is still running at `timeout`."""
    batch: Any = client.BatchV1Api(api)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = batch.read_namespaced_job(job, namespace).status
        if status.succeeded:
            return True
        if status.failed and not status.active:
            conditions = [c.type for c in status.conditions or []]
            if "Failed" in conditions:
                return False
        time.sleep(1)
    raise HarnessError(f"Job {namespace}/{job} still running after {timeout:.0f}s")
