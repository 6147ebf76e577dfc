# The mlrollout operator (Kopf). Build from the repository root:
#   docker build -f serving-image/operator.Dockerfile -t ghcr.io/mlrollout/mlrollout-operator:0.1.0 .
# It runs as non-root on a read-only root filesystem with every capability dropped (the Helm chart and
# manifests/ set exactly that): it writes nothing but, at most, temporary files under /tmp.
#   docker run --read-only --tmpfs /tmp --cap-drop ALL -v ~/.kube/config:/kube/config:ro \
#     -e KUBECONFIG=/kube/config ghcr.io/mlrollout/mlrollout-operator:0.1.0
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
# Optional package index settings, passed through from the builder's pip configuration.
ARG PIP_INDEX_URL=
ARG PIP_EXTRA_INDEX_URL=
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/mlrollout
# Dependencies first, from pyproject alone (core + the `operator` extra, never the model runtime's):
# this layer is reused while only the code changes.
COPY pyproject.toml README.md /src/
RUN python3 -c "import tomllib; p = tomllib.load(open('/src/pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['operator']))" > /tmp/requirements.txt \
 && /opt/mlrollout/bin/pip install -r /tmp/requirements.txt
COPY operator /src/operator
RUN /opt/mlrollout/bin/pip install --no-deps /src \
 && test -x /opt/mlrollout/bin/mlrollout-operator \
 && /opt/mlrollout/bin/python -c "import mlrollout.handlers.wiring" \
 && (/opt/mlrollout/bin/python -m compileall -q /opt/mlrollout >/dev/null || true)

FROM ${BASE_IMAGE}
# A passwd entry for the non-root user, and USER in the environment: Kopf names its peering identity
# after getpass.getuser(), which raises KeyError for a UID without one (e.g. --user 65532 on a bare base).
RUN groupadd --gid 65532 mlrollout \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin mlrollout
ENV USER=mlrollout \
    VIRTUAL_ENV=/opt/mlrollout \
    PATH=/opt/mlrollout/bin:/usr/local/bin:/usr/bin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    MLROLLOUT_HEALTH_PORT=8080
COPY --from=build /opt/mlrollout /opt/mlrollout
# The same non-root user the chart's securityContext names; no shell profile, no home to write.
USER 65532:65532
WORKDIR /tmp
EXPOSE 8080
ENTRYPOINT ["mlrollout-operator"]
