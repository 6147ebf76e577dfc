"""The pod network on the real kernel: reachability, isolation between runs, and clean failure."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from harness import podnet
from harness.kube import external_kubeconfig
from harness.podnet import Layout, PodNetwork
from harness.procs import HarnessError, eventually, free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        external_kubeconfig() is not None, reason="the harness's own pod network (not used on a full cluster)"
    ),
]


def netns_of(prefix: str) -> list[str]:
    return [n for n in podnet._netns_names() if n.startswith(prefix + "-")]


def link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


@pytest.fixture
def net() -> Iterator[PodNetwork]:
    n = PodNetwork.create()
    yield n
    n.destroy()


def test_layout_stays_inside_the_testing_range() -> None:
    import ipaddress

    testing = ipaddress.ip_network("198.18.0.0/15")
    seen: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for slot in range(podnet.SLOTS):
        L = Layout(slot)
        run, svc = ipaddress.ip_network(L.run_cidr), ipaddress.ip_network(L.service_cidr)
        assert run.subnet_of(testing) and svc.subnet_of(testing)  # type: ignore[arg-type,unused-ignore]
        assert not any(run.overlaps(o) or svc.overlaps(o) for o in seen), f"slot {slot} overlaps"
        seen += [run, svc]
        pods = ipaddress.ip_network(L.pod_cidr)
        assert (
            ipaddress.ip_address(L.pod_ip(0)) in pods
            and ipaddress.ip_address(L.pod_ip(L.max_pods - 1)) in pods
        )
        assert ipaddress.ip_address(L.pod_ip(L.max_pods - 1)) != pods.broadcast_address
        assert ipaddress.ip_address(L.dns_ip) in svc and ipaddress.ip_address(L.kubernetes_ip) in svc


def test_pod_is_reachable_from_host_and_pods_and_has_no_route_out(net: PodNetwork) -> None:
    a, ip_a = net.attach()
    b, _ = net.attach()
    server = subprocess.Popen(
        [*net.pod_exec(a), sys.executable, "-m", "http.server", "--bind", ip_a, "8080"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    port = free_port(net.host_ip)
    on_host = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", net.host_ip, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        curl = ["curl", "-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", f"http://{ip_a}:8080/"]
        eventually(
            lambda: subprocess.run(curl, capture_output=True, text=True).stdout == "200", what="host->pod"
        )
        assert subprocess.run([*net.pod_exec(b), *curl], capture_output=True, text=True).stdout == "200"
        # A host service at the host-side address is reachable from a pod, with the same URL.
        to_host = [*curl[:-1], f"http://{net.host_ip}:{port}/"]
        eventually(
            lambda: subprocess.run(to_host, capture_output=True, text=True).stdout == "200", what="host"
        )
        assert subprocess.run([*net.pod_exec(b), *to_host], capture_output=True, text=True).stdout == "200"
        # Nothing leaves the machine: the node has no default route (asked, nothing is sent).
        out = subprocess.run(
            [*net.in_node(["ip", "route", "get", "192.0.2.1"])], capture_output=True, text=True
        )
        assert out.returncode != 0 and "unreachable" in out.stderr.lower()
    finally:
        for p in (server, on_host):
            p.kill()
            p.wait()
    net.detach(a)
    assert a not in podnet._netns_names()


def test_destroy_removes_everything(net: PodNetwork) -> None:
    net.attach()
    net.destroy()
    assert not netns_of(net.prefix)
    assert not link_exists(f"{net.prefix}-host")
    assert not net.record.exists()
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    assert net.layout.run_cidr not in routes


def test_leftovers_of_a_dead_run_are_cleaned_and_a_live_run_is_left_alone(net: PodNetwork) -> None:
    owner = subprocess.Popen(["sleep", "30"])
    crashed = PodNetwork.create(owner=owner.pid)
    crashed.attach()
    orphan = subprocess.Popen([*crashed.pod_exec(netns_of(crashed.prefix)[0]), "sleep", "60"])
    assert crashed.layout.slot != net.layout.slot, "two live runs never share a slot"
    owner.kill()
    owner.wait()
    with podnet._machine_lock():
        cleaned = podnet.clean_stale()
    assert crashed.prefix in cleaned and net.prefix not in cleaned
    assert not netns_of(crashed.prefix) and not link_exists(f"{crashed.prefix}-host")
    assert not crashed.record.exists()
    assert orphan.wait(timeout=10) != 0, "a process left in the dead run's pod was stopped"
    assert netns_of(net.prefix) and net.record.exists() and link_exists(f"{net.prefix}-host")


def test_a_reused_pid_does_not_keep_leftovers_alive(net: PodNetwork) -> None:
    rec = json.loads(net.record.read_text())
    rec["owner_start"] = "0"  # same PID, another process start: the owner is gone
    net.record.write_text(json.dumps(rec))
    with podnet._machine_lock():
        assert net.prefix in podnet.clean_stale()
    assert not netns_of(net.prefix)


def test_missing_tool_is_one_clear_message_and_builds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    before = podnet._netns_names()
    monkeypatch.setattr(
        "harness.podnet.shutil.which", lambda t: None if t == "conntrack" else "/usr/bin/" + t
    )
    with pytest.raises(HarnessError, match=r"missing conntrack.*make system-deps"):
        PodNetwork.create()
    assert podnet._netns_names() == before


def test_a_failure_half_way_leaves_no_half_built_network(monkeypatch: pytest.MonkeyPatch) -> None:
    real = podnet._run
    made: list[str] = []

    def failing(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        if argv[:3] == ("ip", "netns", "add"):
            made.append(argv[3])
        if "bridge" in argv:
            raise HarnessError("pod network: `ip link add br0 type bridge` failed: Operation not permitted")
        return real(*argv, check=check)

    monkeypatch.setattr(podnet, "_run", failing)
    with pytest.raises(HarnessError, match="Operation not permitted"):
        PodNetwork.create()
    # The same failure from the real tool names what to do.
    with pytest.raises(HarnessError, match=r"not permitted.*run as root"):
        real("unshare", "--user", "--map-user=65534", "ip", "link", "add", "mlrtest0", "type", "dummy")
    monkeypatch.setattr(podnet, "_run", real)
    prefix = made[0].split("-")[0]
    time.sleep(0.1)
    assert not netns_of(prefix) and not link_exists(f"{prefix}-host")
    assert not (podnet.STATE_DIR / f"{prefix}.json").exists()
