"""Audit: the git identity and GITHUB_TOKEN set at sign-in survive the profile on Kubernetes.

Before the fix, ``apply_profile`` replaced ``Spawner.environment`` with the profile's, so the
values GitHubAuthenticator.pre_spawn_start had just put there never reached the pod.
The real authenticator hook runs here, with an auth state as GitHub sign-in records it.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from labfleet.auth.github import GitHubAuthenticator
from tests.kube.test_render_helpers import (
    kubeconfig,  # noqa: F401 - fixture
    load_example,
    make_spawner,
    pod_of,
)

AUTH_STATE = {
    "access_token": "gho_signin_token",
    "labfleet": {"git": {"name": "The Octocat", "email": "octocat@example.org"}},
}


async def _signed_in_env(spawner: Any, *, order: str) -> dict[str, str]:
    authenticator = GitHubAuthenticator(client_id="id", client_secret="secret")

    async def get_auth_state() -> dict[str, Any]:
        return AUTH_STATE

    user = SimpleNamespace(get_auth_state=get_auth_state)
    spawner.user_options = {"profile": "small"}
    if order == "signin-first":  # JupyterHub's order: authenticator hook, then the spawner's
        await authenticator.pre_spawn_start(user, spawner)
        spawner.run_pre_spawn_hook()
    else:
        spawner.run_pre_spawn_hook()
        await authenticator.pre_spawn_start(user, spawner)
    pod = await pod_of(spawner)
    return {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}


async def test_signin_environment_survives_the_profile(kubeconfig: Path) -> None:  # noqa: F811
    for order in ("signin-first", "profile-first"):
        env = await _signed_in_env(make_spawner(load_example("github-nfs"), "octocat"), order=order)
        assert env["GITHUB_TOKEN"] == "gho_signin_token", order
        assert env["GIT_AUTHOR_NAME"] == "The Octocat", order
        assert env["GIT_COMMITTER_EMAIL"] == "octocat@example.org", order
        # git's credential helper (a shell function, braces included) arrives verbatim
        helpers = [v for v in env.values() if v and "password=$GITHUB_TOKEN" in v]
        assert helpers and helpers[0].startswith("!f() { "), order


async def test_profile_environment_still_replaced_across_spawns(kubeconfig: Path) -> None:  # noqa: F811
    """Keeping sign-in values must not bring back a previous profile's variables."""
    spawner = make_spawner(load_example("github-nfs"), "octocat")
    spawner.user_options = {"profile": "small"}
    await pod_of(spawner)
    spawner.environment = {**spawner.environment, "FROM_SIGNIN": "1"}
    pod = await pod_of(spawner)
    names = {e["name"] for e in pod["spec"]["containers"][0]["env"]}
    assert "FROM_SIGNIN" in names
