"""``services:``: extra web applications behind the hub's login, at ``/services/NAME/``.

What the setups we replace ran beside their hubs (LSST's Firefly viewer,
ai-on-gke's Ray dashboard): an application that knows nothing of JupyterHub.
labfleet puts a small gate in front of each one (``labfleet.services.gate``):
it signs the browser in through the hub's OAuth, checks the user may use the
service (everyone, or admins only), and forwards the request to the
application, which never sees the hub's cookies.

* On one machine (``labfleet up``) ``command`` runs as a child of the gate,
  which the hub starts and restarts like any managed service.
* On Kubernetes ``image`` runs in a Deployment in the hub's namespace (the
  gate is a second container of the same pod, from the hub image).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, field_validator, model_validator

from labfleet.config.base import Section

#: Names taken by labfleet's own services.
RESERVED = frozenset({"dashboard", "idle-culler", "prometheus", "labfleet-supervisor"})


class ServiceResources(Section):
    """Kubernetes requests/limits of the application container."""

    cpu: float | None = Field(default=None, gt=0)
    memory: str | None = Field(default=None, pattern=r"^\d+(\.\d+)?([KMGT]i?)?$")


class ServiceEntry(Section):
    """One application, reachable at ``/services/<name>/`` once signed in."""

    name: str = Field(pattern=r"^[a-z]([a-z0-9-]{0,28}[a-z0-9])?$")
    display_name: str | None = Field(default=None, max_length=80)
    command: list[str] | None = Field(
        default=None,
        min_length=1,
        description="labfleet up: the program to run; it must listen on 127.0.0.1:<port>. "
        "On Kubernetes: the container's command (default: the image's).",
    )
    image: str | None = Field(default=None, description="Kubernetes: the container image.")
    port: int = Field(ge=1024, le=65535, description="The port the application listens on.")
    url_prefix: str | None = Field(
        default=None,
        pattern=r"^/([A-Za-z0-9._~-]+/)*$",
        description="The path the application expects instead of /services/<name>/ "
        "(e.g. /firefly/): the gate rewrites request paths. None: no rewrite.",
    )
    environment: dict[str, str] = Field(default_factory=dict)
    admin_only: bool = Field(default=False, description="Only hub admins may open it.")
    display: bool = Field(default=True, description="Listed in the hub's Services menu.")
    resources: ServiceResources = Field(default_factory=ServiceResources)

    @field_validator("name")
    @classmethod
    def _not_ours(cls, value: str) -> str:
        if value in RESERVED:
            raise ValueError(f"service name {value!r} is used by labfleet itself")
        return value

    @field_validator("environment")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"{name!r} is not an environment variable name")
            if name.startswith(("JUPYTERHUB_", "LABFLEET_")):
                raise ValueError(f"{name!r}: JUPYTERHUB_* and LABFLEET_* are set by labfleet")
        return value

    @model_validator(mode="after")
    def _runs_somewhere(self) -> ServiceEntry:
        if self.command is None and self.image is None:
            raise ValueError(
                f"service {self.name}: give 'command' (labfleet up) and/or 'image' (Kubernetes)"
            )
        return self

    @property
    def prefix(self) -> str:
        """Where the hub's proxy routes it."""
        return f"/services/{self.name}/"


def unique_names(value: list[ServiceEntry]) -> list[ServiceEntry]:
    seen: set[str] = set()
    for service in value:
        if service.name in seen:
            raise ValueError(f"two services are named {service.name!r}")
        seen.add(service.name)
    return value


#: The annotated type ``FleetConfig.services`` uses.
ServicesField = Annotated[list[ServiceEntry], AfterValidator(unique_names)]
