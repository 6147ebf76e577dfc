"""The test-side pod runner: a small kubelet for pods whose image lives under RUNNER_REGISTRY.

It runs the container's real command as a local process, with the pod's env (values, fieldRefs,
ConfigMap and Secret keys), its volumes (emptyDir, ConfigMap, Secret, hostPath, the service-account token)
bind-mounted at their mount paths in a private mount namespace, and, with a PodNetwork, a network
namespace of its own whose address is the pod IP (without one: a loopback address). The pod IP is
also exported as MLROLLOUT_HOST, the address the process should bind. It reports
phase, readiness (httpGet/tcpSocket probes), exit code and termination message through the pods'
status subresource, so Jobs and Deployments progress through the real controllers.
Every other pod is left to kwok.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from harness.controlplane import RUNNER_REGISTRY
from harness.dataplane import write_resolv_conf
from harness.podnet import PodNetwork
from harness.procs import HarnessError, stop_pid

log = logging.getLogger("harness.runner")
WATCH_READ_TIMEOUT = 60  # seconds; the server ends each watch after 30
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
TERMINATION_LOG_LIMIT = 4096


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def executes(pod: Any) -> bool:
    containers = pod.spec.containers or []
    return bool(containers) and containers[0].image.split("/", 1)[0] == RUNNER_REGISTRY


@dataclass
class RunningPod:
    key: str
    uid: str
    ip: str
    root: Path
    netns: str | None = None  # the pod's network namespace (its sandbox), None on loopback
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    ready: bool = False
    stopping: bool = False
    configmaps: dict[str, tuple[str, Path]] = field(default_factory=dict)  # volume -> (name, dir)


class PodRunner:
    def __init__(
        self,
        kubeconfig: str,
        workdir: Path,
        api_port: int | None = None,
        scrape_file: Path | None = None,
        network: PodNetwork | None = None,
    ) -> None:
        self.api: Any = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))  # type: ignore[no-untyped-call]
        self.workdir = workdir
        self.network = network
        self.api_host, self.api_port = (network.host_ip if network else "127.0.0.1"), api_port
        self.host_ip = network.layout.node_ip if network else "127.0.0.1"
        self.scrape_file = scrape_file
        self.pods: dict[str, RunningPod] = {}
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.next_ip = 1
        self.thread = threading.Thread(target=self._watch_loop, name="pod-runner", daemon=True)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> PodRunner:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.thread.start()
        threading.Thread(target=self._sync_configmaps_loop, name="pod-runner-cm", daemon=True).start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        with self.lock:
            pods = list(self.pods.values())
        for rp in pods:
            self._kill(rp)

    def _watch_loop(self) -> None:
        rv = None
        while not self.stop_event.is_set():
            try:
                if rv is None:
                    lst = self.api.list_pod_for_all_namespaces()
                    rv = lst.metadata.resource_version
                    for pod in lst.items:
                        self._handle("ADDED", pod)
                w: Any = watch.Watch()  # type: ignore[no-untyped-call]
                for ev in w.stream(
                    self.api.list_pod_for_all_namespaces,
                    resource_version=rv,
                    timeout_seconds=30,
                    # a client-side read timeout too: a stalled connection (a loaded API server)
                    # otherwise blocks this read forever, and no pod is started again
                    _request_timeout=(10, WATCH_READ_TIMEOUT),
                    allow_watch_bookmarks=True,
                ):
                    if self.stop_event.is_set():
                        w.stop()
                        break
                    obj = ev["object"]
                    if ev["type"] == "BOOKMARK":  # delivered as a plain dict
                        rv = obj["metadata"]["resourceVersion"]
                        continue
                    rv = obj.metadata.resource_version
                    self._handle(ev["type"], obj)
            except ApiException as e:
                if e.status == 410:
                    rv = None
                else:
                    log.warning("pod watch failed: %s", e)
                    time.sleep(1)
            except Exception:  # the runner must outlive API hiccups (e.g. during teardown)
                if not self.stop_event.is_set():
                    log.exception("pod watch crashed; restarting")
                    time.sleep(1)

    def _handle(self, kind: str, pod: Any) -> None:
        if not executes(pod):
            return
        key = f"{pod.metadata.namespace}/{pod.metadata.name}"
        with self.lock:
            rp = self.pods.get(key)
        if kind == "DELETED" or pod.metadata.deletion_timestamp is not None:
            if rp is not None:
                self._kill(rp)
                with self.lock:
                    self.pods.pop(key, None)
            return
        if rp is not None and rp.uid != pod.metadata.uid:  # same name, new pod
            self._kill(rp)
            rp = None
        if rp is None and pod.spec.node_name and (pod.status.phase in (None, "Pending")):
            threading.Thread(target=self._run_pod, args=(pod,), name=f"pod-{key}", daemon=True).start()

    # -- running one pod -------------------------------------------------------------------------

    def _sandbox(self, rp: RunningPod) -> str:
        """The pod's network: its own namespace on the run's bridge, else a loopback address."""
        if self.network is not None:
            rp.netns, ip = self.network.attach()
            if rp.stopping:  # deleted while the sandbox was being made
                self.network.detach(rp.netns)
            return ip
        with self.lock:
            n = self.next_ip
            self.next_ip += 1
        return f"127.1.{n // 250}.{n % 250 + 1}"

    def _run_pod(self, pod: Any) -> None:
        ns, name = pod.metadata.namespace, pod.metadata.name
        key = f"{ns}/{name}"
        root = self.workdir / ns / f"{name}-{pod.metadata.uid[:8]}"
        rp = RunningPod(key=key, uid=pod.metadata.uid, ip="", root=root)
        with self.lock:
            if key in self.pods:
                return
            self.pods[key] = rp
        c = pod.spec.containers[0]
        try:
            rp.ip = self._sandbox(rp)
        except HarnessError as e:
            self._report_waiting(pod, rp, "CreatePodSandboxError", str(e))
            return
        try:
            env, mounts = self._prepare(pod, rp)
            argv = self._argv(c, env)
        except Exception as e:  # a pod the runner cannot start fails like a kubelet would report it
            self._report_waiting(pod, rp, "CreateContainerConfigError", str(e))
            return
        restart_policy = pod.spec.restart_policy or "Always"
        while not rp.stopping:
            term_log = root / "termination-log"
            term_log.write_text("")
            all_mounts = [*mounts, (term_log, c.termination_message_path or "/dev/termination-log")]
            rp.proc = self._spawn(argv, env, all_mounts, root, c.working_dir, rp.netns)
            started = now()
            self._report_running(pod, rp, started)
            self._register_scrape(pod, rp)
            threading.Thread(target=self._probe_loop, args=(pod, rp, c), daemon=True).start()
            code = rp.proc.wait()
            if rp.stopping:
                return
            message = term_log.read_text(errors="replace")[:TERMINATION_LOG_LIMIT]
            if not message and c.termination_message_policy == "FallbackToLogsOnError" and code != 0:
                message = "\n".join((root / "container.log").read_text(errors="replace").splitlines()[-80:])
            self._register_scrape(pod, rp, remove=True)
            if restart_policy == "Always" or (restart_policy == "OnFailure" and code != 0):
                rp.restarts += 1
                self._report_terminated(pod, rp, code, message, started, final=False)
                time.sleep(min(10, rp.restarts))
                continue
            self._report_terminated(pod, rp, code, message, started, final=True)
            return

    def _prepare(self, pod: Any, rp: RunningPod) -> tuple[dict[str, str], list[tuple[Path, str]]]:
        c = pod.spec.containers[0]
        ns = pod.metadata.namespace
        rp.root.mkdir(parents=True, exist_ok=True)
        env: dict[str, str] = {
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            "HOME": str(rp.root),
            "HOSTNAME": pod.metadata.name,
            "MLROLLOUT_HOST": rp.ip,
        }
        if self.api_port and pod.spec.automount_service_account_token is not False:
            # In a pod network the API server is reached as a cluster does: the `kubernetes`
            # Service, through kube-proxy.
            host, port = (
                (self.network.layout.kubernetes_ip, 443) if self.network else (self.api_host, self.api_port)
            )
            env["KUBERNETES_SERVICE_HOST"] = host
            env["KUBERNETES_SERVICE_PORT"] = str(port)
        for e in c.env or []:
            env[e.name] = self._env_value(pod, e, env)
        for ef in c.env_from or []:
            data: dict[str, str] = {}
            if ef.config_map_ref:
                data = self.api.read_namespaced_config_map(ef.config_map_ref.name, ns).data or {}
            elif ef.secret_ref:
                data = _decode(self.api.read_namespaced_secret(ef.secret_ref.name, ns).data)
            env.update({f"{ef.prefix or ''}{k}": v for k, v in data.items()})

        mounts: list[tuple[Path, str]] = []
        volumes = {v.name: v for v in pod.spec.volumes or []}
        for vm in c.volume_mounts or []:
            v = volumes.get(vm.name)
            if v is None:
                continue
            if v.host_path is not None:  # the same host directory in every pod that names it
                host_dir = Path(v.host_path.path)
                host_dir.mkdir(parents=True, exist_ok=True)
                mounts.append((host_dir, vm.mount_path))
                continue
            src = rp.root / "volumes" / vm.name
            if src.exists():
                pass
            elif v.empty_dir is not None:
                src.mkdir(parents=True)
            elif v.config_map is not None:
                cm = self.api.read_namespaced_config_map(v.config_map.name, ns)
                _write_files(src, cm.data or {})
                rp.configmaps[vm.name] = (v.config_map.name, src)
            elif v.secret is not None:
                _write_files(src, _decode(self.api.read_namespaced_secret(v.secret.secret_name, ns).data))
            elif v.projected is not None and vm.mount_path == SA_DIR:
                self._service_account_files(pod, src)
            else:
                continue
            target = src / vm.sub_path if vm.sub_path else src
            mounts.append((target, vm.mount_path))
        if self.network is not None and (pod.spec.dns_policy or "ClusterFirst").startswith("ClusterFirst"):
            conf = write_resolv_conf(rp.root, ns, self.network.layout.dns_ip)
            mounts.append((conf, "/etc/resolv.conf"))
        return env, mounts

    def _service_account_files(self, pod: Any, d: Path) -> None:
        ns = pod.metadata.namespace
        sa = pod.spec.service_account_name or "default"
        tr = self.api.create_namespaced_service_account_token(
            sa,
            ns,
            client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(
                    audiences=[],
                    expiration_seconds=3600,
                    bound_object_ref=client.V1BoundObjectReference(
                        kind="Pod", api_version="v1", name=pod.metadata.name, uid=pod.metadata.uid
                    ),
                )
            ),
        )
        ca = self.api.read_namespaced_config_map("kube-root-ca.crt", ns).data["ca.crt"]
        _write_files(d, {"token": tr.status.token, "ca.crt": ca, "namespace": ns})

    def _env_value(self, pod: Any, e: Any, env: dict[str, str]) -> str:
        if e.value is not None:
            return _expand(e.value, env)
        vf = e.value_from
        if vf is None:
            return ""
        if vf.field_ref is not None:
            path = vf.field_ref.field_path
            m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
            if m:
                return str((getattr(pod.metadata, m.group(1)) or {}).get(m.group(2), ""))
            return str(
                {
                    "metadata.name": pod.metadata.name,
                    "metadata.namespace": pod.metadata.namespace,
                    "metadata.uid": pod.metadata.uid,
                    "spec.nodeName": pod.spec.node_name or "",
                    "spec.serviceAccountName": pod.spec.service_account_name or "",
                    "status.podIP": env["MLROLLOUT_HOST"],
                    "status.hostIP": self.host_ip,
                }.get(path, "")
            )
        ns = pod.metadata.namespace
        if vf.config_map_key_ref is not None:
            r = vf.config_map_key_ref
            return str((self.api.read_namespaced_config_map(r.name, ns).data or {})[r.key])
        if vf.secret_key_ref is not None:
            r = vf.secret_key_ref
            return _decode(self.api.read_namespaced_secret(r.name, ns).data)[r.key]
        return ""

    @staticmethod
    def _argv(c: Any, env: dict[str, str]) -> list[str]:
        if not c.command:
            raise ValueError(
                f"container {c.name!r}: the pod runner needs an explicit command "
                "(it cannot read the image's entrypoint)"
            )
        return [_expand(a, env) for a in [*c.command, *(c.args or [])]]

    @staticmethod
    def _spawn(
        argv: list[str],
        env: dict[str, str],
        mounts: list[tuple[Path, str]],
        root: Path,
        workdir: str | None,
        netns: str | None = None,
    ) -> subprocess.Popen[bytes]:
        # Bind each volume at its mount path in a private mount namespace, as a kubelet would;
        # the mount point itself must exist on the host, so an empty placeholder is made for it.
        cwd = workdir if workdir and Path(workdir).is_dir() else str(root)
        # cd first and mount over ancestors of the sources last (an emptyDir at /tmp hides a
        # runner directory under /tmp): the cwd and already-bound sources stay reachable.
        script = [f"cd {shlex.quote(cwd)}"]
        # A volume over an ancestor of this Python's prefix (an emptyDir at /tmp while the venv
        # lives under /tmp) would hide the very program the pod runs: such a volume is not
        # mounted and the process shares the host directory instead.
        prefix = Path(sys.prefix).resolve()
        mounts = [m for m in mounts if not prefix.is_relative_to(Path(m[1]).resolve())]
        mounts = sorted(
            mounts, key=lambda m: any(str(src).startswith(m[1].rstrip("/") + "/") for src, _ in mounts)
        )
        for src, target in mounts:
            tp = Path(target)
            if src.is_dir():
                tp.mkdir(parents=True, exist_ok=True)
            else:
                tp.parent.mkdir(parents=True, exist_ok=True)
                tp.touch(exist_ok=True)
            script.append(f"mount --bind {shlex.quote(str(src))} {shlex.quote(target)}")
        script.append("exec " + " ".join(shlex.quote(a) for a in argv))
        out = open(root / "container.log", "ab")  # noqa: SIM115 - handed to the child
        cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c", " && ".join(script)]
        if not shutil.which("unshare") or not mounts:
            cmd = ["sh", "-c", " && ".join(script)]
        if netns is not None:  # nsenter execs: the pod's process keeps the Popen's PID
            cmd = ["nsenter", f"--net=/run/netns/{netns}", *cmd]
        try:
            return subprocess.Popen(
                cmd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            out.close()

    def _kill(self, rp: RunningPod) -> None:
        rp.stopping = True
        if rp.proc is not None and rp.proc.poll() is None:
            stop_pid(rp.proc.pid, grace=5)
            with contextlib.suppress(subprocess.TimeoutExpired):
                rp.proc.wait(timeout=2)
        self._register_scrape(None, rp, remove=True)
        if self.network is not None and rp.netns is not None:
            self.network.detach(rp.netns)
            rp.netns = None

    # -- readiness and status --------------------------------------------------------------------

    def _probe_loop(self, pod: Any, rp: RunningPod, c: Any) -> None:
        probe = c.readiness_probe
        proc = rp.proc
        period = max(0.5, float(probe.period_seconds or 1)) if probe else 0.5
        if probe and probe.initial_delay_seconds:
            time.sleep(min(probe.initial_delay_seconds, 5))
        while proc is rp.proc and proc is not None and proc.poll() is None and not rp.stopping:
            ok = self._probe(probe, rp.ip) if probe else True
            if ok != rp.ready:
                rp.ready = ok
                self._patch(pod, {"conditions": self._conditions(ok)})
                if ok:
                    self._patch(pod, {"containerStatuses": [self._cstatus(pod, rp, ready=True)]})
            time.sleep(period)

    @staticmethod
    def _probe(probe: Any, ip: str) -> bool:
        try:
            if probe.http_get is not None:
                port = probe.http_get.port
                with urllib.request.urlopen(
                    f"http://{ip}:{port}{probe.http_get.path or '/'}", timeout=1
                ) as r:
                    return bool(200 <= r.status < 400)
            if probe.tcp_socket is not None:
                with socket.create_connection((ip, int(probe.tcp_socket.port)), timeout=1):
                    return True
        except Exception:
            return False
        return True  # exec probes are not run here; treated as passing

    @staticmethod
    def _conditions(ready: bool) -> list[dict[str, str]]:
        t = now()
        s = "True" if ready else "False"
        return [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": t},
            {"type": "Initialized", "status": "True", "lastTransitionTime": t},
            {"type": "ContainersReady", "status": s, "lastTransitionTime": t},
            {"type": "Ready", "status": s, "lastTransitionTime": t},
        ]

    def _cstatus(
        self,
        pod: Any,
        rp: RunningPod,
        ready: bool = False,
        state: dict[str, Any] | None = None,
        last: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        c = pod.spec.containers[0]
        s: dict[str, Any] = {
            "name": c.name,
            "image": c.image,
            "imageID": "",
            "ready": ready,
            "started": state is None or "running" in state,
            "restartCount": rp.restarts,
            "state": state or {"running": {"startedAt": now()}},
        }
        if last:
            s["lastState"] = last
        return s

    def _report_running(self, pod: Any, rp: RunningPod, started: str) -> None:
        rp.ready = False
        self._patch(
            pod,
            {
                "phase": "Running",
                "podIP": rp.ip,
                "podIPs": [{"ip": rp.ip}],
                "hostIP": self.host_ip,
                "startTime": started,
                "conditions": self._conditions(False),
                "containerStatuses": [self._cstatus(pod, rp, state={"running": {"startedAt": started}})],
            },
        )

    def _report_terminated(
        self, pod: Any, rp: RunningPod, code: int, message: str, started: str, final: bool
    ) -> None:
        term = {
            "terminated": {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "message": message,
                "startedAt": started,
                "finishedAt": now(),
            }
        }
        if final:
            self._patch(
                pod,
                {
                    "phase": "Succeeded" if code == 0 else "Failed",
                    "conditions": self._conditions(False),
                    "containerStatuses": [self._cstatus(pod, rp, state=term)],
                },
            )
        else:
            waiting = {"waiting": {"reason": "CrashLoopBackOff", "message": f"exit code {code}"}}
            self._patch(
                pod,
                {
                    "conditions": self._conditions(False),
                    "containerStatuses": [self._cstatus(pod, rp, state=waiting, last=term)],
                },
            )

    def _report_waiting(self, pod: Any, rp: RunningPod, reason: str, message: str) -> None:
        self._patch(
            pod,
            {
                "containerStatuses": [
                    self._cstatus(pod, rp, state={"waiting": {"reason": reason, "message": message}})
                ]
            },
        )

    def _patch(self, pod: Any, status: dict[str, Any]) -> None:
        try:
            self.api.patch_namespaced_pod_status(
                pod.metadata.name, pod.metadata.namespace, {"status": status}
            )
        except ApiException as e:
            if e.status != 404:
                log.warning("patching %s/%s status: %s", pod.metadata.namespace, pod.metadata.name, e.reason)

    # -- ConfigMap volumes follow their ConfigMap, as the kubelet's sync does --------------------

    def _sync_configmaps_loop(self) -> None:
        while not self.stop_event.wait(1.0):
            with self.lock:
                pods = list(self.pods.values())
            for rp in pods:
                ns = rp.key.split("/", 1)[0]
                for name, d in rp.configmaps.values():
                    with contextlib.suppress(Exception):
                        _write_files(d, self.api.read_namespaced_config_map(name, ns).data or {})

    # -- Prometheus scrape targets ---------------------------------------------------------------

    def _register_scrape(self, pod: Any, rp: RunningPod, remove: bool = False) -> None:
        """Pods annotated prometheus.io/scrape=true become file-SD targets of the test Prometheus."""
        if self.scrape_file is None:
            return
        with self.lock:
            targets = json.loads(self.scrape_file.read_text()) if self.scrape_file.exists() else []
            targets = [t for t in targets if t["labels"].get("__meta_pod_uid") != rp.uid]
            ann = (pod.metadata.annotations or {}) if pod is not None else {}
            if not remove and ann.get("prometheus.io/scrape") == "true":
                port = ann.get("prometheus.io/port", "8080")
                labels = {
                    "namespace": pod.metadata.namespace,
                    "pod": pod.metadata.name,
                    "__meta_pod_uid": rp.uid,
                    "__metrics_path__": ann.get("prometheus.io/path", "/metrics"),
                }
                labels.update(
                    {re.sub(r"[^a-zA-Z0-9_]", "_", k): v for k, v in (pod.metadata.labels or {}).items()}
                )
                targets.append({"targets": [f"{rp.ip}:{port}"], "labels": labels})
            self.scrape_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.scrape_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(targets))
            tmp.replace(self.scrape_file)


def _write_files(d: Path, data: dict[str, str]) -> None:
    d.mkdir(parents=True, exist_ok=True)
    for k, v in data.items():
        p = d / k
        if not p.exists() or p.read_text() != v:
            tmp = d / f".{k}.tmp"
            tmp.write_text(v)
            tmp.replace(p)  # atomic, so a reader never sees half a file
    for p in d.iterdir():
        if not p.name.startswith(".") and p.name not in data:
            p.unlink()


def _decode(data: dict[str, str] | None) -> dict[str, str]:
    import base64

    return {k: base64.b64decode(v).decode() for k, v in (data or {}).items()}


def _expand(s: str, env: dict[str, str]) -> str:
    """Kubernetes $(VAR) expansion; $$(VAR) escapes."""
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
        lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
        s,
    )


def main() -> None:
    """`python -m harness.runner KUBECONFIG WORKDIR API_PORT [SCRAPE_FILE]`: the runner as a process.

    MLROLLOUT_POD_NETWORK names the run's PodNetwork (its prefix) when pods get their own netns."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    kubeconfig, workdir, api_port, *rest = sys.argv[1:]
    prefix = os.environ.get("MLROLLOUT_POD_NETWORK")
    network = PodNetwork.load(prefix) if prefix else None
    runner = PodRunner(
        kubeconfig, Path(workdir), int(api_port), Path(rest[0]) if rest else None, network
    ).start()
    import signal

    signal.signal(signal.SIGTERM, lambda *_: runner.stop_event.set())
    with contextlib.suppress(KeyboardInterrupt):
        runner.stop_event.wait()
    runner.stop()


if __name__ == "__main__":
    main()
