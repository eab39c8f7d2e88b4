"""The file JupyterHub loads (``jupyterhub -f``): read labfleet.yaml, apply it. Nothing else."""

from labfleet.hub.entry import configure

configure(get_config())  # type: ignore[name-defined]  # noqa: F821 - injected by traitlets
