# The labfleet hub image: JupyterHub + KubeSpawner + labfleet (which also ships labfleet-proxy).
#
#   docker build -f deploy/hub.Dockerfile -t REGISTRY/labfleet-hub:0.1.0 .
#   # then in labfleet.yaml:  kubernetes: {hub: {image: REGISTRY/labfleet-hub:0.1.0}}
#
# Not built by the test suite: no container engine runs on the machines that develop and
# test labfleet. The rendered manifests take the image as a setting, and the entry path
# below is what they run (labfleet.kube.hub.HUB_CONFIG_IN_IMAGE).
#
# Users' servers do not run in this image: they use the images of your profiles
# (any image with `jupyterhub-singleuser`, e.g. quay.io/jupyter/*-notebook).

ARG PYTHON=3.12

FROM python:${PYTHON}-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/labfleet/venv \
 && /opt/labfleet/venv/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/labfleet/venv/bin/pip install --no-cache-dir ".[postgres]"

FROM python:${PYTHON}-slim
# tini reaps zombies and forwards signals, so SIGTERM from the kubelet stops the hub cleanly
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
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
