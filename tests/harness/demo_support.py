"""What every act of the demo prints and reads: headings, kubectl output, a ModelDeployment's
status and conditions, and the kubectl plugin."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.controlplane import ControlPlane

NS = "demo"


def say(msg: str) -> None:
    print(f"\n\033[1m==> {msg}\033[0m", flush=True)


def show(cp: ControlPlane, *args: str) -> None:
    r = cp.kubectl(*args)
    print((r.stdout or r.stderr).rstrip())


def md_status(cp: ControlPlane, name: str = "churn", ns: str = NS) -> dict[str, Any]:
    """The ModelDeployment's status ({} while it cannot be read)."""
    r = cp.kubectl("get", "modeldeployment", name, "-n", ns, "-o", "json")
    return dict(json.loads(r.stdout).get("status") or {}) if r.returncode == 0 else {}


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c.get("type") == type_), {})


def plugin(cp: ControlPlane, name: str, ns: str, *args: str) -> None:
    """`kubectl mlrollout ARGS NAME`, echoed with its output."""
    exe = Path(sys.executable).parent / "kubectl-mlrollout"
    r = subprocess.run(
        [str(exe), *args, name, "-n", ns, "--kubeconfig", str(cp.kubeconfig)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    print(f"   $ kubectl mlrollout {' '.join(args)} {name}")
    print("\n".join("     " + line for line in (r.stdout or r.stderr).splitlines()))
