"""A throwaway CA, an API-server serving certificate and a service-account key, made with openssl."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Certs:
    ca_crt: Path
    ca_key: Path
    server_crt: Path
    server_key: Path
    sa_key: Path
    sa_pub: Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_certs(d: Path) -> Certs:
    d.mkdir(parents=True, exist_ok=True)
    c = Certs(d / "ca.crt", d / "ca.key", d / "server.crt", d / "server.key", d / "sa.key", d / "sa.pub")
    if c.server_crt.exists() and c.sa_pub.exists():
        return c
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "30",
        "-subj",
        "/CN=mlrollout-test-ca",
        "-keyout",
        str(c.ca_key),
        "-out",
        str(c.ca_crt),
    )
    ext = d / "server.ext"
    # 10.0.0.1 is the `kubernetes` Service IP of the --service-cluster-ip-range the harness uses.
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,"
        "DNS:kubernetes.default,DNS:kubernetes.default.svc\n"
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=kube-apiserver",
        "-keyout",
        str(c.server_key),
        "-out",
        str(d / "server.csr"),
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        str(d / "server.csr"),
        "-CA",
        str(c.ca_crt),
        "-CAkey",
        str(c.ca_key),
        "-CAcreateserial",
        "-days",
        "30",
        "-extfile",
        str(ext),
        "-out",
        str(c.server_crt),
    )
    _openssl("genrsa", "-out", str(c.sa_key), "2048")
    _openssl("rsa", "-in", str(c.sa_key), "-pubout", "-out", str(c.sa_pub))
    return c
