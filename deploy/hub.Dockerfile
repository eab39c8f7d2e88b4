# The labfleet hub image: JupyterHub + KubeSpawner + labfleet (which also ships labfleet-proxy).
#
#   labfleet images build --base docker.io/library/debian:bookworm-slim --prefix REGISTRY/labfleet
#   # then in labfleet.yaml:  kubernetes: {hub: {image: REGISTRY/labfleet-hub:VERSION}}
#
# `labfleet images build` assembles the build context (pyproject.toml, README.md, src/,
# deploy/constraints.txt and build-ca/, see below); building by hand works the same way from
# such a directory. The test suite builds this file FROM a debootstrapped Debian bookworm
# (tests/containers/), so BASE must be a Debian bookworm userland with apt: its python3 (3.11)
# is the interpreter of the venv, in both stages, at /usr/bin/python3.
#
# Users' servers do not run in this image: see deploy/user.Dockerfile for a default one.

ARG BASE=docker.io/library/debian:bookworm-slim

FROM ${BASE} AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# build-ca/ca.crt: an extra CA bundle pip must trust (a TLS-inspecting proxy); empty otherwise.
# Only this stage sees it: the final image does not carry it.
COPY build-ca/ /tmp/build-ca/
COPY deploy/constraints.txt /tmp/constraints.txt
# Dependencies first (pinned; a layer that changes only with constraints.txt), then labfleet
# with whatever it needs beyond them (dependencies added to pyproject.toml since).
RUN if [ -s /tmp/build-ca/ca.crt ]; then export PIP_CERT=/tmp/build-ca/ca.crt; fi \
 && python3 -m venv /opt/labfleet/venv \
 && /opt/labfleet/venv/bin/pip install --no-cache-dir --no-compile -r /tmp/constraints.txt
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN if [ -s /tmp/build-ca/ca.crt ]; then export PIP_CERT=/tmp/build-ca/ca.crt; fi \
 && /opt/labfleet/venv/bin/pip install --no-cache-dir -c /tmp/constraints.txt .

FROM ${BASE}
ARG DEBIAN_FRONTEND=noninteractive
# tini reaps zombies and forwards signals, so SIGTERM from the kubelet stops the hub cleanly;
# postgresql-client: `labfleet db upgrade` and `labfleet backup` use pg_dump for PostgreSQL hubs
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 tini ca-certificates postgresql-client \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 1000 labfleet \
 && useradd --uid 1000 --gid 1000 --home-dir /srv/labfleet --no-create-home --shell /usr/sbin/nologin labfleet \
 && mkdir -p /srv/labfleet /etc/labfleet \
 && chown 1000:1000 /srv/labfleet
COPY --from=build /opt/labfleet/venv /opt/labfleet/venv
ENV PATH=/opt/labfleet/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LABFLEET_PLATFORM=kubernetes \
    LABFLEET_CONFIG=/etc/labfleet/labfleet.yaml \
    LABFLEET_DATA_DIR=/srv/labfleet
# A stable path for the entry file, whatever the Python version inside the venv.
RUN ln -s "$(python -c 'import labfleet.hub, os; print(os.path.dirname(labfleet.hub.__file__))')/jupyterhub_config.py" \
          /opt/labfleet/jupyterhub_config.py \
 && python -c "import labfleet, kubespawner, jupyterhub_idle_culler" \
 && command -v labfleet-proxy jupyterhub
# Numeric user: Pod Security "restricted" (runAsNonRoot) can verify it without a passwd lookup.
USER 1000:1000
WORKDIR /srv/labfleet
EXPOSE 8081 8000 8001
ENTRYPOINT ["tini", "--"]
CMD ["jupyterhub", "-f", "/opt/labfleet/jupyterhub_config.py"]
