"""Image references: optional rewrite to a private registry mirror (seed 003)."""

from __future__ import annotations

from labfleet.config.kube import ImagesSection


def _split_registry(image: str) -> tuple[str | None, str]:
    """``quay.io/jupyter/x:1`` -> (``quay.io``, ``jupyter/x:1``); Docker Hub -> (None, ...)."""
    first, sep, rest = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return None, image


def rewrite_image(image: str, images: ImagesSection) -> str:
    """Point ``image`` at ``images.registry`` keeping its repository path and tag.

    Docker Hub's implicit ``library/`` is made explicit, so ``python:3.12``
    becomes ``<mirror>/library/python:3.12`` as registry mirrors store it.
    """
    if images.registry is None:
        return image
    registry, path = _split_registry(image)
    if registry is None and "/" not in path:
        path = f"library/{path}"
    return f"{images.registry}/{path}"


def pull_secret_refs(images: ImagesSection) -> list[dict[str, str]]:
    return [{"name": name} for name in images.pull_secrets]
