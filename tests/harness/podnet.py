"""Pod networking for the test cluster, isolated per run so that parallel runs never meet.

Each run takes one slot of 198.18.0.0/15 (reserved for network testing) under a machine-wide
lock and builds, with iproute2:

    root netns                         run's node netns <prefix>-node
    <prefix>-host 198.18.4s.1/30 ====== up0 198.18.4s.2/30  (the node address)
    routes: 198.18.4s.0/22,             br0 198.18.(4s+2).1/23  (pods' gateway)
            198.19.4s.0/22 via .2        |-- v<n> ====== eth0 in <prefix>-p<n>: one pod, 198.18.(4s+2).x

The host-side address (198.18.4s.1) is where host processes that pods must reach listen (API
server, MLflow, Prometheus): it is a local address of the host, so one URL works from the host and
from a pod. kube-proxy and CoreDNS run inside the node netns, so every iptables rule of this run
lives there and disappears with it. Nothing is routed beyond the run's own ranges: the node netns
has no default route.

Ownership: a record in STATE_DIR names the owner PID (and its start time, against PID reuse);
a new run removes only the leftovers of runs whose owner is dead.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harness.procs import HarnessError

STATE_DIR = Path(os.environ.get("MLROLLOUT_NET_STATE", "/run/mlrollout-net"))
SLOTS = 64  # 198.18.0.0/16 in /22s for links and pods, 198.19.0.0/16 in /22s for Services
PREFIX_RE = re.compile(r"^mlr[0-9a-f]{4}$")
TOOLS = ("ip", "nsenter", "iptables", "conntrack")
WHAT_TO_DO = "run as root on Linux with iproute2, util-linux, iptables and conntrack (`make system-deps`)"


@dataclass(frozen=True)
class Layout:
    """The addresses of one slot."""

    slot: int

    @property
    def host_ip(self) -> str:
        return f"198.18.{4 * self.slot}.1"

    @property
    def node_ip(self) -> str:
        return f"198.18.{4 * self.slot}.2"

    @property
    def run_cidr(self) -> str:  # link, fake pods (kwok) and executed pods
        return f"198.18.{4 * self.slot}.0/22"

    @property
    def fake_pod_cidr(self) -> str:  # kwok's pods: addresses nobody answers at
        return f"198.18.{4 * self.slot + 1}.0/24"

    @property
    def pod_cidr(self) -> str:
        return f"198.18.{4 * self.slot + 2}.0/23"

    @property
    def gateway(self) -> str:
        return f"198.18.{4 * self.slot + 2}.1"

    @property
    def service_cidr(self) -> str:
        return f"198.19.{4 * self.slot}.0/22"

    @property
    def kubernetes_ip(self) -> str:  # the API server allocates the range's first address to it
        return f"198.19.{4 * self.slot}.1"

    @property
    def dns_ip(self) -> str:
        return f"198.19.{4 * self.slot}.10"

    def pod_ip(self, index: int) -> str:
        return str(ipaddress.ip_address(f"198.18.{4 * self.slot + 2}.0") + 2 + index)

    @property
    def max_pods(self) -> int:
        return 509


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        hint = f"; {WHAT_TO_DO}" if "not permitted" in r.stderr or "denied" in r.stderr else ""
        raise HarnessError(f"pod network: `{' '.join(argv)}` failed: {r.stderr.strip()}{hint}")
    return r


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _owner_alive(record: dict[str, object]) -> bool:
    pid = int(str(record.get("owner", 0)))
    return pid > 0 and _start_time(pid) == record.get("owner_start")


def _netns_names() -> list[str]:
    r = _run("ip", "-j", "netns", "list", check=False)
    with contextlib.suppress(ValueError):
        return [str(n["name"]) for n in json.loads(r.stdout or "[]")]
    return []


@contextlib.contextmanager
def _machine_lock() -> Iterator[None]:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(STATE_DIR / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def check_capabilities() -> None:
    """One clear message when this machine cannot build pod networks."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise HarnessError(f"pod network: missing {', '.join(missing)}; {WHAT_TO_DO}")
    if os.geteuid() != 0:
        raise HarnessError(f"pod network: needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN); {WHAT_TO_DO}")


def clean_stale() -> list[str]:
    """Remove the networks of runs whose owner process is gone; returns their prefixes.

    Call with the machine lock held. A live run always has a record (written before anything is
    built, removed after everything is gone), so a namespace of ours without one is a leftover too.
    """
    cleaned = []
    live: set[str] = set()
    for rec_file in sorted(STATE_DIR.glob("mlr*.json")):
        try:
            rec = json.loads(rec_file.read_text())
        except (OSError, ValueError):
            rec = {}
        prefix = rec_file.stem
        if rec and _owner_alive(rec):
            live.add(prefix)
            continue
        _destroy(prefix)
        rec_file.unlink(missing_ok=True)
        cleaned.append(prefix)
    for ns in _netns_names():
        prefix = ns.split("-", 1)[0]
        if PREFIX_RE.match(prefix) and prefix not in live:
            _destroy(prefix)
            if prefix not in cleaned:
                cleaned.append(prefix)
    return cleaned


def remove(prefix: str) -> None:
    """Remove a run's network by its prefix, recorded or not (`make cluster-down`)."""
    if not PREFIX_RE.match(prefix):
        raise HarnessError(f"pod network: {prefix!r} is not a harness network prefix")
    _destroy(prefix)
    (STATE_DIR / f"{prefix}.json").unlink(missing_ok=True)


def _destroy(prefix: str) -> None:
    """Kill what still runs in the run's namespaces, then delete them and its host link."""
    names = [n for n in _netns_names() if n.startswith(prefix + "-")]
    for ns in names:
        for pid in _run("ip", "netns", "pids", ns, check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
    for ns in sorted(names, key=lambda n: n.endswith("-node")):  # pods first, node last
        _run("ip", "netns", "del", ns, check=False)
    _run("ip", "link", "del", f"{prefix}-host", check=False)


@dataclass
class PodNetwork:
    """One run's network. `create()` builds it (or fails having built nothing); `destroy()`."""

    prefix: str
    layout: Layout
    used: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def node_ns(self) -> str:
        return f"{self.prefix}-node"

    @property
    def host_ip(self) -> str:
        return self.layout.host_ip

    @property
    def record(self) -> Path:
        return STATE_DIR / f"{self.prefix}.json"

    @classmethod
    def create(cls, owner: int | None = None) -> PodNetwork:
        check_capabilities()
        with _machine_lock():
            for prefix in clean_stale():
                print(
                    f"pod network: removed the leftovers of crashed run {prefix} (its owner process is gone)",
                    file=sys.stderr,
                )
            taken = set()
            for f in STATE_DIR.glob("mlr*.json"):
                with contextlib.suppress(OSError, ValueError, KeyError):
                    taken.add(int(json.loads(f.read_text())["slot"]))
            foreign = _routed_prefixes()
            free = [
                s
                for s in range(SLOTS)
                if s not in taken and not _overlaps(foreign, Layout(s).run_cidr, Layout(s).service_cidr)
            ]
            if not free:
                raise HarnessError(
                    f"pod network: all {SLOTS} slots of 198.18.0.0/15 are in use by live runs "
                    f"(records in {STATE_DIR}); stop some runs and retry"
                )
            prefix = "mlr" + secrets.token_hex(2)
            while (STATE_DIR / f"{prefix}.json").exists():
                prefix = "mlr" + secrets.token_hex(2)
            net = cls(prefix, Layout(free[0]))
            net.adopt(owner or os.getpid())
        try:
            net._build()
        except BaseException:
            net.destroy()
            raise
        return net

    @classmethod
    def load(cls, prefix: str) -> PodNetwork:
        """The network of a run recorded in STATE_DIR (the pod-runner process, cluster-down)."""
        try:
            rec = json.loads((STATE_DIR / f"{prefix}.json").read_text())
        except (OSError, ValueError) as e:
            raise HarnessError(f"pod network {prefix}: no record in {STATE_DIR} ({e})") from e
        return cls(prefix, Layout(int(rec["slot"])))

    def adopt(self, owner: int) -> None:
        """Make `owner` the process whose death marks this network as a leftover."""
        rec = {"owner": owner, "owner_start": _start_time(owner), "slot": self.layout.slot}
        tmp = self.record.with_suffix(".tmp")
        tmp.write_text(json.dumps(rec))
        tmp.replace(self.record)

    def _build(self) -> None:
        L, node, host_if = self.layout, self.node_ns, f"{self.prefix}-host"
        _run("ip", "netns", "add", node)
        _run("ip", "link", "add", host_if, "type", "veth", "peer", "name", "up0", "netns", node)
        _run("ip", "addr", "add", f"{L.host_ip}/30", "dev", host_if)
        _run("ip", "link", "set", host_if, "up")
        _run("ip", "-n", node, "link", "set", "lo", "up")
        _run("ip", "-n", node, "addr", "add", f"{L.node_ip}/30", "dev", "up0")
        _run("ip", "-n", node, "link", "set", "up0", "up")
        _run("ip", "-n", node, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", node, "addr", "add", f"{L.gateway}/23", "dev", "br0")
        _run("ip", "-n", node, "link", "set", "br0", "up")
        # The node routes between its pods, the host link and kube-proxy's NAT; bridged traffic
        # goes through iptables so that a pod reaching a Service served by its neighbour works.
        self.node_exec(
            "sh",
            "-c",
            "echo 1 > /proc/sys/net/ipv4/ip_forward && echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables",
        )
        _run("ip", "-n", node, "route", "add", L.host_ip, "dev", "up0")
        for cidr in (L.run_cidr, L.service_cidr):
            _run("ip", "route", "add", cidr, "via", L.node_ip, "dev", host_if)

    def node_exec(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return _run("nsenter", f"--net=/run/netns/{self.node_ns}", *argv)

    def in_node(self, argv: list[str]) -> list[str]:
        """`argv` wrapped to run inside the node netns (kube-proxy, CoreDNS)."""
        return ["nsenter", f"--net=/run/netns/{self.node_ns}", *argv]

    # -- pods ------------------------------------------------------------------------------------

    def attach(self) -> tuple[str, str]:
        """A new pod sandbox: returns (netns name, pod IP)."""
        with self.lock:
            free = next((i for i in range(self.layout.max_pods) if i not in self.used), None)
            if free is None:
                raise HarnessError(f"pod network {self.prefix}: no free pod address left")
            self.used.add(free)
        ns, ip, L = f"{self.prefix}-p{free}", self.layout.pod_ip(free), self.layout
        try:
            _run("ip", "netns", "add", ns)
            _run(
                "ip",
                "link",
                "add",
                f"v{free}",
                "netns",
                self.node_ns,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                ns,
            )
            _run("ip", "-n", self.node_ns, "link", "set", f"v{free}", "master", "br0", "up")
            # Hairpin, as the kubelet sets it: a pod calling a Service that picks the pod itself
            # gets its frame back out of the bridge port it came in on.
            _run("ip", "-n", self.node_ns, "link", "set", f"v{free}", "type", "bridge_slave", "hairpin", "on")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
            _run("ip", "-n", ns, "addr", "add", f"{ip}/23", "dev", "eth0")
            _run("ip", "-n", ns, "link", "set", "eth0", "up")
            _run("ip", "-n", ns, "route", "add", "default", "via", L.gateway)
        except BaseException:
            self.detach(ns)
            raise
        return ns, ip

    def detach(self, ns: str) -> None:
        _run("ip", "netns", "del", ns, check=False)  # its veth pair goes with it
        with contextlib.suppress(ValueError), self.lock:
            self.used.discard(int(ns.rsplit("-p", 1)[1]))

    def pod_exec(self, ns: str) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{ns}"]

    def destroy(self) -> None:
        """Remove everything this run built; safe to call twice or on a half-built network."""
        _destroy(self.prefix)
        self.record.unlink(missing_ok=True)


def _routed_prefixes() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Routes the host already has (another tool's use of 198.18.0.0/15 rules a slot out)."""
    r = _run("ip", "-j", "route", "show", "table", "all", check=False)
    nets = []
    with contextlib.suppress(ValueError):
        for route in json.loads(r.stdout or "[]"):
            dst = route.get("dst", "")
            if dst and dst != "default" and ":" not in dst:
                with contextlib.suppress(ValueError):
                    nets.append(ipaddress.ip_network(dst, strict=False))
    return nets


def _overlaps(routes: list[ipaddress.IPv4Network | ipaddress.IPv6Network], *cidrs: str) -> bool:
    return any(ipaddress.ip_network(c).overlaps(r) for c in cidrs for r in routes)
