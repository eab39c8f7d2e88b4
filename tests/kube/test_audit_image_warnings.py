"""Audit: ``check`` says when the hub image (or a user image) cannot be pulled by a cluster.

Before the fix the default ``kubernetes.hub.image`` named an image nobody has published, and
nothing said so until the hub pod sat in ImagePullBackOff. A locally built image
(``labfleet images build`` tags ``localhost/labfleet/...``) is just as unreachable for a
cluster's nodes unless ``images.registry`` rewrites it.
"""

from __future__ import annotations

from labfleet.config.load import parse_text
from labfleet.kube.checks import kube_warnings

PUBLISHED = "kubernetes: {hub: {image: registry.example.org/team/labfleet-hub:0.1.0}}\n"


def image_warnings(text: str) -> list[str]:
    return [w for w in kube_warnings(parse_text(text)) if "image" in w]


def test_the_unpublished_default_hub_image_is_named_with_the_fix() -> None:
    (warning,) = image_warnings("kubernetes: {namespace: lab}\n")
    assert "kubernetes.hub.image" in warning and "not published" in warning
    assert "labfleet images build" in warning and "docs/kubernetes.md" in warning


def test_a_published_hub_image_is_quiet() -> None:
    assert image_warnings(PUBLISHED) == []


def test_local_images_are_named_unless_a_registry_rewrites_them() -> None:
    local = (
        "profiles:\n"
        "  - {slug: lab, display_name: Lab, default: true,"
        " image: localhost/labfleet/labfleet-user:0.1.0}\n"
        "kubernetes: {hub: {image: localhost/labfleet/labfleet-hub:0.1.0}}\n"
    )
    warnings = image_warnings(local)
    assert len(warnings) == 2
    assert any("kubernetes.hub.image" in w for w in warnings)
    assert any("profiles.lab.image" in w for w in warnings)
    assert all("cannot pull" in w and "push" in w for w in warnings)
    mirrored = local.replace("kubernetes: {", "kubernetes: {images: {registry: mirror.example/m}, ")
    assert image_warnings(mirrored) == []


def test_a_mirror_of_the_default_still_needs_someone_to_push_it() -> None:
    (warning,) = image_warnings("kubernetes: {images: {registry: mirror.example/m}}\n")
    assert "not published" in warning and "mirror.example/m/labfleet/hub:" in warning
