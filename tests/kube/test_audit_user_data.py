"""Audit: deleting a hub user on Kubernetes keeps their files unless the config says otherwise.

Before the fix, per-user namespaces defaulted to ``delete_on_user_delete: true``: deleting a
user from the admin page (or by ``culling.users``) deleted their namespace and, with it,
their home volume, although the docs promised "never their files". Now the default keeps
the home volume (and the namespace holding it); ``kubernetes.users.delete_data_with_user``
is the one explicit opt-in, and ``check`` warns when it is on. The end-to-end half (a real
hub deleting a user against the API double) is in ``test_spawn_kube.py``.
"""

from __future__ import annotations

import pytest

from labfleet.config.load import ConfigError, parse_text
from labfleet.kube.checks import kube_warnings
from labfleet.kube.spawner_settings import build_kubespawner_settings

SHARED = "kubernetes: {namespace: lab}\n"
PER_USER = "kubernetes: {namespace: lab, users: {namespaces: per-user}}\n"


@pytest.mark.parametrize("text", [SHARED, PER_USER], ids=["shared", "per-user"])
def test_deleting_a_user_keeps_their_volume_by_default(text: str) -> None:
    spawner = build_kubespawner_settings(parse_text(text))["KubeSpawner"]
    assert spawner["delete_pvc"] is False
    assert not spawner.get("labfleet_delete_user_namespace", False)


def test_deleting_data_with_the_user_is_an_explicit_flag() -> None:
    per_user = parse_text(
        "kubernetes: {namespace: lab, users: {namespaces: per-user, delete_data_with_user: true}}"
    )
    spawner = build_kubespawner_settings(per_user)["KubeSpawner"]
    assert spawner["labfleet_delete_user_namespace"] is True
    assert spawner["delete_pvc"] is True
    shared = parse_text("kubernetes: {namespace: lab, users: {delete_data_with_user: true}}")
    assert build_kubespawner_settings(shared)["KubeSpawner"]["delete_pvc"] is True


def test_check_warns_when_deleting_a_user_deletes_their_files() -> None:
    assert not [w for w in kube_warnings(parse_text(PER_USER)) if "delete_data_with_user" in w]
    on = parse_text(
        "culling: {users: true}\n"
        "kubernetes: {namespace: lab, users: {namespaces: per-user, delete_data_with_user: true}}"
    )
    warnings = [w for w in kube_warnings(on) if "delete_data_with_user" in w]
    assert len(warnings) == 1
    assert "culling.users" in warnings[0] and "files" in warnings[0]


def test_the_old_opt_out_name_points_at_the_new_flag() -> None:
    """``per_user.delete_on_user_delete: true`` meant "delete everything": refused with the
    new name, so nobody upgrades into a silently different behaviour."""
    with pytest.raises(ConfigError, match="delete_data_with_user"):
        parse_text(
            "kubernetes: {users: {namespaces: per-user, per_user: {delete_on_user_delete: true}}}"
        )
    parse_text("kubernetes: {users: {per_user: {delete_on_user_delete: false}}}")
