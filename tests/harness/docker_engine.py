"""A private Docker engine for container tests: dockerd started by hand, stopped by its PID.

Its data root is cached under ~/.cache/mlrollout/docker so that the debootstrap-built base image
(no registry can be pulled from here) survives between runs. Everything else (socket, exec root,
pid file) lives in a temporary directory.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

CACHE = Path(os.environ.get("MLROLLOUT_CACHE", Path.home() / ".cache" / "mlrollout"))
BASE_IMAGE = "mlrollout-base:bookworm"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


class EngineUnavailable(RuntimeError):
    """dockerd could not be started here; the message carries the tail of its log."""


@dataclass
class DockerEngine:
    socket: Path
    pid: int
    workdir: Path
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    lock_fd: int = -1  # holds the data root: two engines must never share one

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def docker(self, *args: str, check: bool = True, timeout: float = 900, input: bytes | None = None) -> str:
        proc = subprocess.run(
            ["docker", "--host", self.host, *args],
            capture_output=True,
            timeout=timeout,
            check=False,
            input=input,
        )
        out = proc.stdout.decode(errors="replace")
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"docker {' '.join(args)} failed ({proc.returncode}):\n{out}\n"
                f"{proc.stderr.decode(errors='replace')}"
            )
        return out

    def image_exists(self, name: str) -> bool:
        return bool(self.docker("images", "-q", name).strip())

    def stop(self) -> None:
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        for _ in range(100):
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.kill(self.pid, signal.SIGKILL)
        shutil.rmtree(self.workdir, ignore_errors=True)
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
            self.lock_fd = -1


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no dockerd log)"


def _dockerd_using(root: Path) -> bool:
    needle = f"--data-root={root}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "cmdline").read_bytes().replace(b"\0", b" ").split(b" "):
                    return True
            except OSError:
                continue
    return False


def _claim_data_root(slots: int = 4) -> tuple[Path, int]:
    """The first cached data root no other engine holds (test sessions may run side by side)."""
    for i in range(slots):
        root = CACHE / ("docker" if i == 0 else f"docker-{i}")
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(str(root.parent / f".{root.name}.lock"), os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        if _dockerd_using(root):  # started by a session that did not take the lock
            os.close(fd)
            continue
        return root, fd
    raise EngineUnavailable(f"all {slots} Docker data roots under {CACHE} are in use by other test sessions")


def start_engine(timeout: float = 60) -> DockerEngine:
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    if not Path(dockerd).exists() or not shutil.which("docker"):
        raise EngineUnavailable("dockerd/docker not installed (make system-deps installs docker.io)")
    data_root, lock_fd = _claim_data_root()
    # Unix socket paths are limited to ~108 bytes: keep the temp dir short.
    workdir = Path(tempfile.mkdtemp(prefix="mlr-dk-", dir="/tmp"))
    sock = workdir / "docker.sock"
    log = workdir / "dockerd.log"
    cmd = [
        dockerd,
        f"--data-root={data_root}",
        f"--exec-root={workdir / 'exec'}",
        f"--pidfile={workdir / 'dockerd.pid'}",
        f"--host=unix://{sock}",
        "--iptables=false",
        "--ip6tables=false",
        "--bridge=none",
    ]
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    engine = DockerEngine(socket=sock, pid=proc.pid, workdir=workdir, log=log, lock_fd=lock_fd)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_tail(log)
            shutil.rmtree(workdir, ignore_errors=True)
            os.close(lock_fd)
            raise EngineUnavailable(f"dockerd exited ({proc.returncode}):\n{tail}")
        if sock.exists():
            try:
                engine.docker("version", timeout=10)
                return engine
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
        time.sleep(0.5)
    tail = log_tail(log)
    engine.stop()
    raise EngineUnavailable(f"dockerd did not answer within {timeout:.0f}s:\n{tail}")


def ensure_base_image(engine: DockerEngine, name: str = BASE_IMAGE) -> str:
    """Debian bookworm with python3 + pip, trusting the host's CAs; built once, reused after."""
    if engine.image_exists(name):
        return name
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    if not Path(debootstrap).exists():
        raise EngineUnavailable("debootstrap not installed (make system-deps installs it)")
    rootfs = Path(tempfile.mkdtemp(prefix="mlr-rootfs-", dir=str(CACHE)))
    try:
        subprocess.run(
            [
                debootstrap,
                "--variant=minbase",
                "--include=python3,python3-venv,python3-pip,ca-certificates",
                "bookworm",
                str(rootfs),
            ],
            check=True,
            capture_output=True,
            timeout=900,
        )
        if HOST_CA_BUNDLE.exists():
            target = rootfs / HOST_CA_BUNDLE.relative_to("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(HOST_CA_BUNDLE, target)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imp = subprocess.run(
            ["docker", "--host", engine.host, "import", "-", name],
            stdin=tar.stdout,
            capture_output=True,
            timeout=600,
            check=False,
        )
        tar.wait()
        if imp.returncode != 0:
            raise RuntimeError(f"docker import failed: {imp.stderr.decode(errors='replace')}")
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    return name


if __name__ == "__main__":  # python tests/harness/docker_engine.py: warm the base-image cache
    eng = start_engine()
    try:
        t0 = time.monotonic()
        print(ensure_base_image(eng), f"{time.monotonic() - t0:.1f}s")
    finally:
        eng.stop()
