# Solstice: the control plane (`solstice serve`, the default) and the edge gateway (`solstice edge`).
#
#   docker build -t solstice .
#   docker run -p 3000:3000 -v solstice-data:/data -v "$PWD/plugins:/plugins:ro" solstice
#   docker run ... solstice edge --control-url http://control:3000      # the same image as an edge
#
# Plugins mounted at /plugins are registered as file:///plugins/NAME (executable by uid 10001);
# the example Python plugins ship in /usr/share/solstice/examples/plugins. docker-compose.yml runs
# a control plane, an edge, a registry and a grpc:// plugin server from this image.
#
# BASE_IMAGE needs python3 (3.11 or newer) with the venv module; both stages use it, so the venv
# built in the first one runs unchanged in the second.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python3 -m venv /opt/solstice/venv
# Dependencies first, read from pyproject.toml, so a change to src/ does not reinstall them.
COPY pyproject.toml README.md ./
RUN python3 -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
        > /tmp/requirements.txt \
    && /opt/solstice/venv/bin/pip install -r /tmp/requirements.txt
COPY src ./src
# A wheel, then the venv from it: the image holds an installed package, not a source tree.
RUN /opt/solstice/venv/bin/pip wheel --no-deps --wheel-dir /tmp/dist . \
    && /opt/solstice/venv/bin/pip install --no-deps /tmp/dist/solstice-*.whl \
    && /opt/solstice/venv/bin/solstice version

FROM ${BASE_IMAGE}
# A fixed numeric uid, so Kubernetes' runAsNonRoot can check it and host bind mounts can be chowned;
# --no-log-init: no sparse lastlog entry sized by that uid.
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /data --no-log-init \
        --shell /usr/sbin/nologin solstice \
    && mkdir -p /data /plugins \
    && chown solstice:solstice /data
COPY --from=build /opt/solstice/venv /opt/solstice/venv
COPY examples/plugins /usr/share/solstice/examples/plugins
# The venv comes first on PATH: plugins starting with `#!/usr/bin/env python3` get the SDK.
# SOLSTICE_HOST: listen on every interface of the container, not its loopback only.
# Both OCI caches live in the data volume, so pulled plugins survive a restart and a registry outage.
ENV PATH=/opt/solstice/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SOLSTICE_HOST=0.0.0.0 \
    SOLSTICE_PORT=3000 \
    SOLSTICE_DATA_DIR=/data \
    AI_STUDIO_OCI_CACHE_DIR=/data/oci-cache \
    OCI_PLUGINS_CACHE_DIR=/data/oci-cache
VOLUME ["/data", "/plugins"]
EXPOSE 3000
USER 10001:10001
WORKDIR /data
# No curl in a slim image: the venv's Python asks /healthz (served by `serve` and `edge` alike).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SOLSTICE_PORT', '3000'), timeout=4)"]
ENTRYPOINT ["solstice"]
CMD ["serve"]
