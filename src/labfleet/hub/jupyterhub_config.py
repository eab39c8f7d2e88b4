"""The file JupyterHub loads (``jupyterhub -f``): read labfleet.yaml, apply it. Nothing else."""

from labfleet.hub import storage_handlers
from labfleet.hub.entry import configure

storage_handlers.install()  # a full disk, read-only dir or locked DB named as such on every page
configure(get_config())  # type: ignore[name-defined]  # noqa: F821 - injected by traitlets
storage_handlers.announce_low_disk(get_config())  # type: ignore[name-defined]  # noqa: F821
