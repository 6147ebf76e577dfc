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


def make_certs(d: Path, ips: tuple[str, ...] = ("10.0.0.1",)) -> Certs:
    """`ips`: the addresses the API server is reached at besides loopback (its bind address and
    the `kubernetes` Service IP); a cached serving certificate for other addresses is remade."""
    d.mkdir(parents=True, exist_ok=True)
    c = Certs(d / "ca.crt", d / "ca.key", d / "server.crt", d / "server.key", d / "sa.key", d / "sa.pub")
    ext = d / "server.ext"
    sans = (
        "subjectAltName=IP:127.0.0.1," + "".join(f"IP:{ip}," for ip in ips) + "DNS:localhost,"
        "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,"
        "DNS:kubernetes.default.svc.cluster.local\n"
    )
    if c.server_crt.exists() and c.sa_pub.exists() and ext.exists() and ext.read_text() == sans:
        return c
    if c.ca_crt.exists() and c.sa_pub.exists():  # same CA and keys, new serving certificate
        _server_cert(d, c, ext, sans)
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
    _server_cert(d, c, ext, sans)
    _openssl("genrsa", "-out", str(c.sa_key), "2048")
    _openssl("rsa", "-in", str(c.sa_key), "-pubout", "-out", str(c.sa_pub))
    return c


def _server_cert(d: Path, c: Certs, ext: Path, sans: str) -> None:
    ext.write_text(sans)
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
