"""A hub container restarted in its pod leaves no valid token of the previous culler (issue 11).

JupyterHub gives a managed service without a configured token (the idle culler) a
new one at every start and never deletes the old one. Under ``labfleet up`` the
supervisor revokes them; in the hub pod a crashed container is restarted by the
kubelet with no init container and no supervisor, so the hub's own config load
must. Here the previous start's state is made with JupyterHub's own ORM, exactly
as ``JupyterHub.init_services`` makes it, and the real ``jupyterhub_config.py`` is
loaded the way ``jupyterhub -f`` loads it (traitlets' file loader, in a process of
its own) with the hub pod's environment. No Kubernetes API is needed: loading the
config talks to none.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import labfleet.hub
from labfleet.hub.service_tokens import STARTUP_NOTE

SECRETS = ("cookie_secret", "proxy_token", "crypt_key", "supervisor_token")
LOAD = (
    "import sys\n"
    "from traitlets.config.loader import PyFileConfigLoader\n"
    "path = sys.argv[1]\n"
    "c = PyFileConfigLoader(path.rsplit('/', 1)[1], path.rsplit('/', 1)[0]).load_config()\n"
    "print(c.JupyterHub.db_url)\n"
)


@contextlib.contextmanager
def hub_db(url: str) -> Iterator[object]:
    from jupyterhub import orm

    session = orm.new_session_factory(url)()
    try:
        yield session
    finally:
        session.close()


def previous_start(url: str) -> tuple[str, str]:
    """(the culler's startup token, a token from the config) as a past hub start left them."""
    from jupyterhub import orm

    with hub_db(url) as db:
        culler = orm.Service(name="idle-culler")
        supervisor = orm.Service(name="labfleet-supervisor")
        hub_client = orm.OAuthClient(identifier="jupyterhub")  # the hub makes it at start
        db.add_all([culler, supervisor, hub_client])  # type: ignore[attr-defined]
        db.commit()  # type: ignore[attr-defined]
        stale = culler.new_api_token(note=STARTUP_NOTE)
        kept = supervisor.new_api_token(note="from config")
    return stale, kept


def still_valid(url: str, token: str) -> bool:
    from jupyterhub import orm

    with hub_db(url) as db:
        return orm.APIToken.find(db, token) is not None


def load_hub_config(tmp_path: Path, platform: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "labfleet.yaml"
    config.write_text("culling: {enabled: true}\n")
    env = {
        **os.environ,
        "LABFLEET_PLATFORM": platform,
        "LABFLEET_CONFIG": str(config),
        "LABFLEET_DATA_DIR": str(tmp_path / "data"),
        **{f"LABFLEET_SECRET_{name.upper()}": "ab" * 32 for name in SECRETS},
    }
    entry = Path(labfleet.hub.__file__).with_name("jupyterhub_config.py")
    return subprocess.run(
        [sys.executable, "-c", LOAD, str(entry)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_hub_restart_in_its_pod_revokes_the_previous_cullers_token(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'data' / 'jupyterhub.sqlite'}"
    (tmp_path / "data").mkdir()
    loaded = load_hub_config(tmp_path, "kubernetes")  # a first start: no database yet
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == url, "the pod's hub uses the DB this test fills"
    stale, kept = previous_start(url)
    assert still_valid(url, stale)

    loaded = load_hub_config(tmp_path, "kubernetes")  # the container restarted
    assert loaded.returncode == 0, loaded.stderr
    assert not still_valid(url, stale), "the dead culler's delete:servers token still works"
    assert still_valid(url, kept), "a token from the config is a secret by design: kept"


def test_under_labfleet_up_the_config_load_leaves_tokens_to_the_supervisor(
    tmp_path: Path,
) -> None:
    """Locally the supervisor revokes them before it starts the hub (tests/chaos check it)."""
    url = f"sqlite:///{tmp_path / 'data' / 'jupyterhub.sqlite'}"
    (tmp_path / "data").mkdir()
    stale, _ = previous_start(url)
    loaded = load_hub_config(tmp_path, "local")
    assert loaded.returncode == 0, loaded.stderr
    assert still_valid(url, stale)
