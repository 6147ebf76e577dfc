"""A component that fails to start fails the run at once, with its log, and leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.controlplane import BINARIES, ControlPlane, bin_dir
from harness.procs import HarnessError, pid_alive


@pytest.mark.integration
def test_failing_apiserver_stops_everything_and_shows_its_log(tmp_path: Path) -> None:
    real = bin_dir()
    fake = tmp_path / "bin"
    fake.mkdir()
    for b in BINARIES:
        (fake / b).symlink_to(real / b)
    (fake / "kube-apiserver").unlink()
    (fake / "kube-apiserver").write_text("#!/bin/sh\necho 'Error: unknown flag: --bogus' >&2\nexit 1\n")
    (fake / "kube-apiserver").chmod(0o755)

    cp = ControlPlane(tmp_path / "cp", bins=fake)
    started: list[int] = []
    orig = cp._proc

    def record(name: str, *argv: str):  # type: ignore[no-untyped-def]
        p = orig(name, *argv)
        started.append(p.pid)
        return p

    cp._proc = record  # type: ignore[method-assign,unused-ignore]
    with pytest.raises(HarnessError) as e:
        cp.start()
    assert "kube-apiserver exited with code 1" in str(e.value)
    assert "unknown flag: --bogus" in str(e.value)
    assert len(started) == 2  # etcd, then the apiserver
    assert not any(pid_alive(pid) for pid in started), "etcd was left running"
    assert not (tmp_path / "cp" / "pids").exists()


def test_a_port_in_use_is_named_in_the_error(tmp_path: Path) -> None:
    import socket
    import sys

    from harness.procs import Proc

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        code = f"import socket; socket.socket().bind(('127.0.0.1', {port}))"
        p = Proc("server", [sys.executable, "-c", code], tmp_path / "server.log").start()
        with pytest.raises(HarnessError) as e:
            p.wait_ready(lambda: False, timeout=30)
    assert "a port it needs is in use" in str(e.value) and "Address already in use" in str(e.value)
