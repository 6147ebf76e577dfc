"""Processes the harness starts: each on loopback, logged to a file, stopped by its PID."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def eventually(
    check: Callable[[], T | None], timeout: float = 60, what: str = "condition", interval: float = 0.3
) -> T:
    """Poll `check` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = check()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class HarnessError(RuntimeError):
    """A component failed to start; the message says which, why, and what to do."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class Proc:
    name: str
    argv: Sequence[str]
    log: Path
    env: dict[str, str] | None = None
    cwd: str | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> Proc:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            try:
                self.popen = subprocess.Popen(
                    list(self.argv),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=self.env,
                    cwd=self.cwd,
                    start_new_session=True,  # its own process group: stop() reaches its children
                )
            except OSError as e:
                raise HarnessError(f"{self.name}: cannot execute {self.argv[0]}: {e}") from e
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_ready(self, probe: Callable[[], bool], timeout: float = 60.0) -> None:
        """Poll `probe` until true; fail at once, with the log tail, if the process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                code = self.popen.returncode if self.popen else None
                raise HarnessError(
                    f"{self.name} exited with code {code} before becoming ready{_hint(self.log)}. "
                    f"Log {self.log}:\n{tail(self.log)}"
                )
            with contextlib.suppress(Exception):
                if probe():
                    return
            time.sleep(0.2)
        self.stop()
        raise HarnessError(f"{self.name} not ready after {timeout:.0f}s. Log {self.log}:\n{tail(self.log)}")

    def stop(self, grace: float = 10.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        stop_pid(self.popen.pid, grace)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=1)


def _hint(log: Path) -> str:
    """What a known failure in the log means for the person reading the error."""
    text = tail(log, 40).lower()
    if "address already in use" in text or "bind: address" in text:
        return (
            ": a port it needs is in use by another process (the harness picks free ports, so this"
            " is a race with something else on the machine or a leftover process: find it with"
            " `ss -ltnp`, stop it, and retry)"
        )
    if "operation not permitted" in text or "permission denied" in text:
        return ": it lacks a permission (the pod network and kube-proxy need root)"
    return ""


def stop_pid(pid: int, grace: float = 10.0) -> None:
    """SIGTERM the process group led by `pid`, then SIGKILL after `grace` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return
            time.sleep(0.1)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child counts as gone.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            return False
    return True


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0
