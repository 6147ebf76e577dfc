"""`make cluster-up` / `make cluster-down`: the test control plane for a person, in .cluster/."""

from __future__ import annotations

import json
import os
import sys

from harness.controlplane import REPO, ControlPlane
from harness.procs import HarnessError, Proc, pid_alive, stop_pid
from harness.services import MLflowServer, Prometheus

STATE = REPO / ".cluster"


def up() -> None:
    if (STATE / "pids").exists():
        down(quiet=True)  # a stale state dir from an earlier run: stop what is left of it first
    cp = ControlPlane(STATE)
    try:
        cp.start()
        prom = Prometheus(STATE / "prometheus").start()
        assert prom.proc is not None
        cp.procs.append(prom.proc)  # owned from here on: a later failure stops it too
        mlflow = MLflowServer(STATE / "mlflow").start()
        assert mlflow.proc is not None
        cp.procs.append(mlflow.proc)
        runner = Proc(
            "pod-runner",
            [
                sys.executable,
                "-m",
                "harness.runner",
                str(cp.kubeconfig),
                str(STATE / "pods"),
                str(cp.api_port),
                str(prom.runner_targets),
            ],
            cp.logs / "pod-runner.log",
            env=dict(os.environ, PYTHONPATH=str(REPO / "tests")),
        ).start()
        cp.procs.append(runner)
    except BaseException:
        cp.stop()
        raise
    cp.write_pids()
    (STATE / "endpoints.json").write_text(json.dumps({"prometheus": prom.url, "mlflow": mlflow.uri}))
    print(f"""control plane up (Kubernetes {cp.bins.name.removeprefix("bin-")}), logs in {cp.logs}
  export KUBECONFIG={cp.kubeconfig}
  export PATH={cp.bins}:$PATH      # kubectl, helm built for it
  kubectl get nodes
Prometheus: {prom.url}   MLflow: {mlflow.uri}
Pods whose image starts with mlrollout.local/ run as local processes; kwok fakes all others.
Stop it with: make cluster-down""")


def down(quiet: bool = False) -> None:
    pids_file = STATE / "pids"
    if not pids_file.exists():
        if not quiet:
            print("no control plane is running from .cluster/")
        return
    for name, pid in reversed(list(json.loads(pids_file.read_text()).items())):
        if pid_alive(pid):
            stop_pid(pid)
            if not quiet:
                print(f"stopped {name} (pid {pid})")
    pids_file.unlink()


def main() -> None:
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    try:
        {"up": up, "down": down}[cmd]()
    except KeyError:
        sys.exit("usage: python -m harness.cli up|down")
    except HarnessError as e:
        sys.exit(f"cluster-up failed: {e}")


if __name__ == "__main__":
    main()
