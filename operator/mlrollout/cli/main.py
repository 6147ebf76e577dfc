"""`kubectl mlrollout COMMAND NAME`: status, watch, history and manual control of a ModelDeployment.

Exit codes: 0 done (or already done), 1 the action does not apply or the API refused it, 2 usage,
3 `watch` or `--wait` timed out, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from kubernetes import client, config

from mlrollout.adapters.registry.credentials import MlflowCredentials, credentials_from_env
from mlrollout.adapters.registry.mlflow import MlflowRegistry
from mlrollout.api import names
from mlrollout.cli import render
from mlrollout.cli.requests import Patch, Refusal, outcome, plan

ACTIONS = ("promote", "abort", "retry", "pause", "resume", "undo", "approve")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-n", "--namespace", help="namespace (default: the kubeconfig context's)")
    common.add_argument("--kubeconfig", help="path to the kubeconfig file")
    common.add_argument("--context", help="kubeconfig context to use")
    p = argparse.ArgumentParser(prog="kubectl mlrollout", description=__doc__, parents=[common])
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in (
        ("status", "phase, versions, step, weights, gate, analysis, monitoring, conditions"),
        ("history", "promoted versions (the rollback window) with their MLflow lineage tags"),
        ("promote", "move past the current step (--full: to 100%% at once)"),
        ("abort", "stop the rollout: all traffic back to stable"),
        ("retry", "roll out the aborted or rolled-back version again"),
        ("pause", "hold every change (mlrollout.io/paused)"),
        ("resume", "lift the pause"),
        ("undo", "roll back to the previous promoted version (or --to-version N)"),
        ("approve", "let a retrained candidate go to its gates and rollout (autoDeploy: false)"),
        ("watch", "follow the rollout until it settles"),
    ):
        cmd = sub.add_parser(name, help=text, description=text, parents=[common])
        cmd.add_argument("name", help="the ModelDeployment")
        if name == "promote":
            cmd.add_argument("--full", action="store_true", help="skip the remaining steps")
        if name == "undo":
            cmd.add_argument("--to-version", help="a version in the rollback window")
        if name == "history":
            cmd.add_argument(
                "--tracking-uri",
                help="MLflow address (default: $MLFLOW_TRACKING_URI, else spec.registry.trackingUri)",
            )
        if name in {"promote", "abort", "retry", "undo", "approve"}:
            cmd.add_argument(
                "--wait",
                type=float,
                default=0,
                metavar="SECONDS",
                help="wait this long for the operator to act on the request and print what it did",
            )
        if name == "watch":
            cmd.add_argument("--timeout", type=float, default=0, help="give up after this many seconds")
            cmd.add_argument("--interval", type=float, default=2.0, help="seconds between reads")
    return p.parse_args(argv)


class Cluster:
    """The only code here that talks to the API server."""

    def __init__(self, kubeconfig: str | None, context: str | None, namespace: str | None) -> None:
        config.load_kube_config(config_file=kubeconfig, context=context)  # type: ignore[no-untyped-call]
        self.namespace = namespace or _context_namespace(kubeconfig, context)
        self.api = client.CustomObjectsApi()

    def get(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.api.get_namespaced_custom_object(  # type: ignore[assignment]
            names.GROUP, names.VERSION, self.namespace, names.PLURAL, name
        )
        return found

    def annotate(self, obj: dict[str, Any], annotations: dict[str, str | None]) -> None:
        """Merge-patch annotations only (never spec), failing if the object changed since it was read."""
        meta = obj["metadata"]
        body = {"metadata": {"annotations": annotations, "resourceVersion": meta["resourceVersion"]}}
        self.api.patch_namespaced_custom_object(
            names.GROUP, names.VERSION, self.namespace, names.PLURAL, meta["name"], body
        )


def _context_namespace(kubeconfig: str | None, context: str | None) -> str:
    contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    chosen = next((c for c in contexts if c["name"] == context), active) if context else active
    return str(((chosen or {}).get("context") or {}).get("namespace") or "default")


class _Interrupts:
    """Ctrl-C raises KeyboardInterrupt as usual and is also remembered: an interrupt raised while a
    finalizer runs (a socket closed by the garbage collector) is swallowed by Python, and the polling
    loops check this flag so that such a Ctrl-C still ends them."""

    seen = False

    @classmethod
    def handler(cls, signum: int, frame: object) -> None:
        cls.seen = True
        raise KeyboardInterrupt

    @classmethod
    def check(cls) -> None:
        if cls.seen:
            raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGINT, _Interrupts.handler)
    cluster: Cluster | None = None
    try:
        cluster = Cluster(args.kubeconfig, args.context, args.namespace)
        return _run(args, cluster)
    except client.ApiException as e:
        where = cluster.namespace if cluster else args.namespace
        what = "not found" if e.status == 404 else f"refused ({e.status} {e.reason})"
        print(f"error: ModelDeployment {args.name!r} in namespace {where!r}: {what}", file=sys.stderr)
        return 1
    except config.ConfigException as e:
        print(f"error: kubeconfig: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace, cluster: Cluster) -> int:
    if args.command == "status":
        print(render.status_text(cluster.get(args.name)))
        return 0
    if args.command == "history":
        obj = cluster.get(args.name)
        print(render.history_text(obj, _tags(obj, args.tracking_uri)))
        return 0
    if args.command == "watch":
        return _watch(cluster, args.name, args.timeout, args.interval)
    action = "promote-full" if args.command == "promote" and args.full else args.command
    for attempt in (1, 2):  # a concurrent write (409) is answered by reading and planning again
        obj = cluster.get(args.name)
        decided = plan(action, obj, getattr(args, "to_version", None))
        if isinstance(decided, Refusal):
            print(f"error: {decided.reason}", file=sys.stderr)
            return 1
        if isinstance(decided, Patch):
            try:
                cluster.annotate(obj, dict(decided.annotations))
            except client.ApiException as e:
                if e.status == 409 and attempt == 1:
                    continue
                raise
        print(decided.summary, flush=True)
        wait = getattr(args, "wait", 0)
        if wait > 0 and decided.request_id is not None:
            return _wait_for_operator(cluster, args.name, action, decided.request_id, wait)
        return 0
    return 1


def _wait_for_operator(cluster: Cluster, name: str, action: str, rid: str, timeout: float) -> int:
    """Poll until status.rollout.handledRequest is `rid`; the operator's Request condition says how."""
    deadline = time.monotonic() + timeout
    while True:
        _Interrupts.check()
        done = outcome(action, cluster.get(name), rid)
        if isinstance(done, Refusal):
            print(f"error: {done.reason}", file=sys.stderr)
            return 1
        if done is not None:
            print(done.summary)
            return 0
        if time.monotonic() >= deadline:
            print(f"the operator has not acted on request {rid} after {timeout:g}s", file=sys.stderr)
            return 3
        time.sleep(min(1.0, timeout / 10))


def _watch(cluster: Cluster, name: str, timeout: float, interval: float) -> int:
    deadline = time.monotonic() + timeout if timeout > 0 else None
    last = ""
    while True:
        _Interrupts.check()
        obj = cluster.get(name)
        line = render.summary(obj)
        if line != last:
            print(line, flush=True)
            last = line
        status = obj.get("status") or {}
        settled = status.get("phase") in render.TERMINAL_PHASES and not (status.get("rollout") or {}).get(
            "candidate"
        )
        if settled:
            return 0 if status.get("phase") == "Healthy" else 1
        if deadline is not None and time.monotonic() >= deadline:
            print(f"timed out after {timeout:g}s", file=sys.stderr)
            return 3
        time.sleep(interval)


def _tags(obj: dict[str, Any], tracking_uri: str | None) -> dict[str, dict[str, str]] | None:
    """MLflow tags of every version of the model (the rollout outcomes of earlier releases live
    there); None when MLflow is not reached. A version MLflow no longer knows simply has no tags."""
    status = obj.get("status") or {}
    spec_uri = ((obj.get("spec") or {}).get("registry") or {}).get("trackingUri")
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or spec_uri
    model = status.get("modelName")
    if not uri or not model:
        return None
    creds = credentials_from_env()
    registry = MlflowRegistry(uri, creds if isinstance(creds, MlflowCredentials) else None)
    found = registry.all_version_tags(model)
    if isinstance(found, dict):
        return found
    if found.reason == "ModelNotFound":
        return {}
    print(f"note: {found.message}", file=sys.stderr)
    return None


if __name__ == "__main__":
    sys.exit(main())
