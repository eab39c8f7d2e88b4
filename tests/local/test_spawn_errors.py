"""Refusals reach the user as JupyterHub SpawnExceptions with a status and a plain message."""

from __future__ import annotations

from pathlib import Path

import pytest
from jupyterhub.spawner import SpawnException

from labfleet.spawn.accounts import AccountRefused, IsolationError
from labfleet.spawn.gpus import GpuUnavailable
from labfleet.spawn.limits import LimitsError
from labfleet.spawn.local import EnvironmentMissing, _spawn_error, singleuser_command


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (AccountRefused("no system account for 'root': reserved"), 403),
        (GpuUnavailable("no free GPU: 0 of 2 are free"), 503),
        (IsolationError("lf-x cannot start its server: /root is 0700"), 500),
        (LimitsError("could not write '1' to memory.max"), 500),
        (EnvironmentMissing("profile 'gpu': /opt/x/bin/jupyterhub-singleuser is missing"), 500),
    ],
)
def test_refusals_keep_their_message(error: Exception, status: int) -> None:
    relayed = _spawn_error(error)
    assert isinstance(relayed, SpawnException)
    assert relayed.status_code == status
    assert relayed.message == str(error)


def test_other_errors_reach_the_member_in_plain_words() -> None:
    """An unexpected error is no exception repr on the page (issue 17).

    The spawner raises the relayed error ``from`` the original, so the hub's log
    keeps the bug's traceback.
    """
    bug = KeyError("slot")
    relayed = _spawn_error(bug, "alice")
    assert isinstance(relayed, SpawnException)
    assert relayed.status_code == 500
    assert "KeyError(" not in relayed.message
    assert relayed.message.startswith("Your server could not be started:")


def test_spawn_exceptions_pass_through_unchanged() -> None:
    already = SpawnException("a message the hub already phrased", reason="error")
    assert _spawn_error(already) is already


def test_profile_environment_selects_its_own_singleuser() -> None:
    assert singleuser_command("/opt/envs/torch") == ["/opt/envs/torch/bin/jupyterhub-singleuser"]
    assert Path(singleuser_command()[0]).name == "jupyterhub-singleuser"
