"""Helpers for tests that send real traffic: an echo server for executed pods, and counting.

ECHO_SERVER, run as a pod's command: GET / answers JSON {pod, track (env ECHO_TRACK), headers};
GET /ready is the readiness probe and fails after POST /unready; GET /resolve?name=N resolves N
and GET /call?url=U[&host=H] fetches U (with Host H), both from inside the pod (DNS, Service and
Gateway checks).
"""

from __future__ import annotations

import math
import urllib.request
from typing import Any

from kubernetes import client

from harness.kube import KubeEnv

ECHO_SERVER = r"""
import http.server, os, json, socket, urllib.request, urllib.parse
state = {"ready": True}
name = os.environ.get("HOSTNAME", "?")
class H(http.server.BaseHTTPRequestHandler):
    def _send(self, code, body):
        b = body.encode()
        self.send_response(code); self.send_header("Content-Length", str(len(b))); self.end_headers()
        self.wfile.write(b)
    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        if u.path == "/ready":
            return self._send(200 if state["ready"] else 503, "ready" if state["ready"] else "unready")
        if u.path == "/call":
            q = urllib.parse.parse_qs(u.query)
            req = urllib.request.Request(q["url"][0], headers={"Host": q["host"][0]} if "host" in q else {})
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    return self._send(200, r.read().decode())
            except Exception as e:
                return self._send(502, f"{type(e).__name__}: {e}")
        if u.path == "/resolve":
            host = urllib.parse.parse_qs(u.query)["name"][0]
            try:
                return self._send(200, socket.gethostbyname(host))
            except OSError as e:
                return self._send(502, str(e))
        hdr = {k.lower(): v for k, v in self.headers.items()}
        self._send(200, json.dumps({"pod": name, "track": os.environ.get("ECHO_TRACK", ""), "headers": hdr}))
    def do_POST(self):
        state["ready"] = False
        self._send(200, "now unready")
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer((os.environ["MLROLLOUT_HOST"], 8080), H).serve_forever()
"""

IMAGE = "mlrollout.local/echo:test"


def echo_deployment(name: str, replicas: int, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"echo": name}},
            "template": {
                "metadata": {"labels": {**labels, "echo": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "echo",
                            "image": IMAGE,
                            "command": ["python3", "-c", ECHO_SERVER],
                            "env": [{"name": "ECHO_TRACK", "value": name}],
                            "ports": [{"containerPort": 8080}],
                            "readinessProbe": {
                                "httpGet": {"path": "/ready", "port": 8080},
                                "periodSeconds": 1,
                            },
                        }
                    ]
                },
            },
        },
    }


def service(name: str, selector: dict[str, str], port: int = 80) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": selector, "ports": [{"name": "http", "port": port, "targetPort": 8080}]},
    }


def get(url: str, headers: dict[str, str] | None = None, timeout: float = 5) -> str:
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return str(r.read().decode())


def within_binomial(hits: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    """|hits - np| within `sigmas` standard deviations: a false alarm about once in 15,000 runs."""
    return abs(hits - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def ready_pods(kube: KubeEnv, namespace: str, selector: str) -> list[Any]:
    core: Any = client.CoreV1Api(kube.api_client())
    pods = core.list_namespaced_pod(namespace, label_selector=selector).items
    return [
        p
        for p in pods
        if p.status.pod_ip
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    ]


def cluster_ip(kube: KubeEnv, namespace: str, name: str) -> str:
    core: Any = client.CoreV1Api(kube.api_client())
    return str(core.read_namespaced_service(name, namespace).spec.cluster_ip)
