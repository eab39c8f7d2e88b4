"""The file JupyterHub loads (``jupyterhub -f``): read labfleet.yaml, apply it.

In the hub pod it also revokes the tokens JupyterHub generated for the previous
container's services (``hub.service_tokens``): nothing else does it there.
"""

from labfleet.hub import service_tokens, storage_handlers
from labfleet.hub.entry import configure

storage_handlers.install()  # a full disk, read-only dir or locked DB named as such on every page
configure(get_config())  # type: ignore[name-defined]  # noqa: F821 - injected by traitlets
service_tokens.revoke_in_hub_pod(get_config())  # type: ignore[name-defined]  # noqa: F821
storage_handlers.announce_low_disk(get_config())  # type: ignore[name-defined]  # noqa: F821
