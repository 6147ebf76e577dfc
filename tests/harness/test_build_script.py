"""The binary build script fails with one clear message, never a hang or a traceback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).with_name("build-binaries.sh")


def test_missing_go_toolchain_is_one_clear_message(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MLROLLOUT_BIN_DIR": str(tmp_path / "bin")}
    r = subprocess.run(["bash", str(SCRIPT), "etcd"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "no Go toolchain" in r.stderr and "KUBEBUILDER_ASSETS" in r.stderr


def test_ready_binaries_from_kubebuilder_assets_are_used_without_building(tmp_path: Path) -> None:
    assets = tmp_path / "assets"
    assets.mkdir()
    fake = assets / "kubeconform"
    fake.write_text("#!/bin/sh\necho fake\n")
    fake.chmod(0o755)
    env = dict(
        os.environ, KUBEBUILDER_ASSETS=str(assets), MLROLLOUT_BIN_DIR=str(tmp_path / "bin"), GOPROXY="off"
    )  # any attempt to build would fail: nothing can be fetched
    r = subprocess.run(
        ["bash", str(SCRIPT), "kubeconform"], env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "bin" / "kubeconform").resolve() == fake


def test_unknown_target_is_refused(tmp_path: Path) -> None:
    env = dict(os.environ, MLROLLOUT_BIN_DIR=str(tmp_path / "bin"))
    r = subprocess.run(["bash", str(SCRIPT), "kubelet"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "unknown target kubelet" in r.stderr
