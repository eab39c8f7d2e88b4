"""Warnings about a config that renders fine but would fail in the hub pod.

Not validation errors: the same file also runs on one machine, where an
``env:VAR`` secret comes from the shell rather than from a Kubernetes Secret.
"""

from __future__ import annotations

from labfleet.config.kube import DEFAULT_HUB_IMAGE
from labfleet.config.model import FleetConfig
from labfleet.kube.audit_checks import audit_warnings
from labfleet.kube.hub import DB_URL_ENV
from labfleet.kube.images import rewrite_image

_ENV_PREFIX = "env:"


def env_references(config: FleetConfig) -> dict[str, str]:
    """``{VAR: key path}`` for every ``env:VAR`` value the hub will read."""
    found: dict[str, str] = {}
    auth = config.auth
    for kind in ("github", "google", "oidc"):
        secret = getattr(auth, kind).client_secret
        if isinstance(secret, str) and secret.startswith(_ENV_PREFIX):
            found[secret[len(_ENV_PREFIX) :]] = f"auth.{kind}.client_secret"
    db_url = config.hub.db_url
    if db_url and db_url.startswith(_ENV_PREFIX):
        found[db_url[len(_ENV_PREFIX) :]] = "hub.db_url"
    return found


def literal_secrets(config: FleetConfig) -> list[str]:
    """Key paths of secrets written into the YAML itself (they travel with every copy)."""
    found = []
    for kind in ("github", "google", "oidc"):
        secret = getattr(config.auth, kind).client_secret
        if isinstance(secret, str) and not secret.startswith(("env:", "file:")):
            found.append(f"auth.{kind}.client_secret")
    db_url = config.hub.db_url
    if db_url and not db_url.startswith(("env:", "file:")) and "@" in db_url:
        found.append("hub.db_url")
    if config.auth.kind == "dummy" and config.auth.dummy.password:
        found.append("auth.dummy.password")
    return found


def kube_warnings(config: FleetConfig) -> list[str]:
    kube = config.kubernetes
    provided = set(kube.hub.env_from_secrets)
    if kube.hub.database.kind == "postgres":
        provided.add(DB_URL_ENV)
    warnings = [
        f"{path} reads ${var}, but kubernetes.hub.env_from_secrets does not set it in the hub pod"
        for var, path in env_references(config).items()
        if var not in provided
    ]
    warnings += [literal_secret_warning(path) for path in literal_secrets(config)]
    warnings += user_data_warnings(config)
    warnings += image_warnings(config)
    warnings += audit_warnings(config)
    if config.auth.kind == "iap" and kube.access.kind != "gke-ingress":
        warnings.append(
            "auth.kind is iap but kubernetes.access.kind is not gke-ingress: "
            "nothing in front of the hub sets the IAP header"
        )
    if kube.access.kind == "gke-ingress" and kube.access.gke.iap and config.auth.kind != "iap":
        warnings.append(
            "IAP protects the load balancer but auth.kind is not iap: the hub will ask users "
            "to sign in a second time"
        )
    return warnings


def user_data_warnings(config: FleetConfig) -> list[str]:
    """Deleting a hub user deletes their files only on an explicit flag: say so loudly."""
    users = config.kubernetes.users
    if not users.delete_data_with_user:
        return []
    what = (
        "their namespace and everything in it"
        if users.namespaces == "per-user"
        else ("their home volume")
    )
    who = "an admin deleting a user on the admin page or through the API"
    if config.culling.enabled and config.culling.users:
        who += ", and culling.users deleting every idle user,"
    return [
        f"kubernetes.users.delete_data_with_user is on: {who} deletes {what}, their files "
        "included, with no way back; leave it off to keep users' files until you purge them"
    ]


def literal_secret_warning(path: str) -> str:
    """The hub's config is a Secret in the cluster, but the file itself travels further."""
    where = (
        f"{path} is written in the config file itself (it reaches the cluster as a Secret, "
        "but also every copy and commit of the file)"
    )
    if path == "auth.dummy.password":
        return f"{where}: the demo authenticator's shared password; use a real auth.kind"
    return f"{where}: use 'env:VAR' with kubernetes.hub.env_from_secrets to keep it out"


def _image_references(config: FleetConfig) -> list[tuple[str, str]]:
    """(key path, image) for every image labfleet itself names."""
    kube = config.kubernetes
    found = [("kubernetes.hub.image", kube.hub.image), ("kubernetes.users.image", kube.users.image)]
    if kube.proxy.image is not None:
        found.append(("kubernetes.proxy.image", kube.proxy.image))
    found += [(f"profiles.{p.slug}.image", p.image) for p in config.profiles if p.image]
    return found


def image_warnings(config: FleetConfig) -> list[str]:
    """Images a cluster's nodes cannot pull: the unpublished default, local builds."""
    images = config.kubernetes.images
    warnings = []
    for path, image in _image_references(config):
        pulled = rewrite_image(image, images)
        if path == "kubernetes.hub.image" and image == DEFAULT_HUB_IMAGE:
            push = "push it" if pulled == image else f"push it as {pulled} (images.registry)"
            warnings.append(
                f"kubernetes.hub.image is the default {image}, which is not published yet: "
                "build it with `labfleet images build --base IMAGE --prefix REGISTRY/PATH`, "
                f'{push}, and set kubernetes.hub.image (docs/kubernetes.md, "Images")'
            )
        elif pulled.startswith("localhost/"):
            warnings.append(
                f"{path} is {image}, a local image that a cluster's nodes cannot pull: push it "
                "to a registry and name that (or set kubernetes.images.registry), or load it "
                'into a kind/k3d cluster (docs/kubernetes.md, "Images")'
            )
    return warnings
