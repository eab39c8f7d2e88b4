# The default labfleet user image: JupyterLab + jupyterhub-singleuser + an IPython kernel.
#
#   labfleet images build --base docker.io/library/debian:bookworm-slim --prefix REGISTRY/labfleet
#   # then a profile:  {image: REGISTRY/labfleet-user:VERSION}
#
# Any image with `jupyterhub-singleuser` on PATH works as a profile image (for example
# quay.io/jupyter/*-notebook); this one is small, pinned to the JupyterHub version the hub
# runs (deploy/constraints.txt) and runs as uid 1000 with its home at /home/jovyan, where
# labfleet mounts the user's volume. BASE: a Debian bookworm userland with apt.

ARG BASE=docker.io/library/debian:bookworm-slim

FROM ${BASE} AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY build-ca/ /tmp/build-ca/
COPY deploy/constraints.txt /tmp/constraints.txt
RUN if [ -s /tmp/build-ca/ca.crt ]; then export PIP_CERT=/tmp/build-ca/ca.crt; fi \
 && python3 -m venv /opt/jupyter/venv \
 && /opt/jupyter/venv/bin/pip install --no-cache-dir --no-compile -c /tmp/constraints.txt \
      jupyterhub jupyterlab ipykernel

FROM ${BASE}
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 tini ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 1000 jovyan \
 && useradd --uid 1000 --gid 1000 --home-dir /home/jovyan --create-home --shell /bin/bash jovyan
COPY --from=build /opt/jupyter/venv /opt/jupyter/venv
ENV PATH=/opt/jupyter/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOME=/home/jovyan
RUN command -v jupyterhub-singleuser jupyter-lab \
 && python -c "import ipykernel"
USER 1000:1000
WORKDIR /home/jovyan
EXPOSE 8888
ENTRYPOINT ["tini", "--"]
CMD ["jupyterhub-singleuser"]
