"""Which apt source the container fixtures debootstrap from (pure: no podman needed)."""

from __future__ import annotations

from pathlib import Path

from tests.containers.conftest import debian_mirror


def test_a_disabled_third_party_source_is_not_taken_for_the_debian_mirror(
    tmp_path: Path,
) -> None:
    listed = tmp_path / "sources.list.d"
    listed.mkdir()
    # as on this machine: a disabled NodeSource file sorts before the Debian one
    (listed / "a-nodesource.sources.disabled-by-farm").write_text(
        "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\n"
    )
    (listed / "b-cloud.list").write_text("deb https://packages.cloud.google.com/apt sdk main\n")
    (listed / "debian.sources").write_text(
        "Types: deb\n# http://snapshot.debian.org/archive/debian/20250520T000000Z\n"
        "URIs: http://mirror.example/debian\nSuites: bookworm\n"
    )
    assert debian_mirror(tmp_path) == "http://mirror.example/debian"


def test_no_debian_source_falls_back_to_deb_debian_org(tmp_path: Path) -> None:
    assert debian_mirror(tmp_path) == "http://deb.debian.org/debian"
