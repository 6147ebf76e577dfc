#!/usr/bin/env bash
# Installs the Debian packages the tests run for real: Prometheus, the Docker engine,
# debootstrap (to build a base image without a registry) and the pod network's tools.
# Idempotent; a no-op when present.
set -euo pipefail
need=()
command -v prometheus >/dev/null || need+=(prometheus)
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v iptables >/dev/null || need+=(iptables)
# The pod network (tests/harness/podnet.py) and kube-proxy: namespaces, veths, NAT, conntrack.
command -v ip >/dev/null || need+=(iproute2)
command -v nsenter >/dev/null || need+=(util-linux)
command -v conntrack >/dev/null || need+=(conntrack)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  SUDO=sudo; command -v sudo >/dev/null || { echo "system-deps: need root or sudo to install: ${need[*]}" >&2; exit 1; }
else
  SUDO=
fi
echo "system-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# --no-install-recommends keeps prometheus from pulling its node exporter and web assets daemons.
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts the prometheus service on install; the tests run their own on free ports.
if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
  $SUDO systemctl stop prometheus || true
fi
