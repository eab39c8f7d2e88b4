"""The config → JupyterHub settings translation is pure and complete (issue 2)."""

from __future__ import annotations

import sys
from pathlib import Path

from traitlets.config import Config

from labfleet.config.load import parse_text
from labfleet.hub.apply import apply_settings
from labfleet.hub.settings import build_hub_settings, culler_command
from labfleet.runtime import Runtime
from labfleet.secrets import HubSecrets

SECRETS = HubSecrets(
    cookie_secret="ab" * 32, proxy_token="p" * 64, crypt_key="cd" * 32, supervisor_token="s" * 64
)
RUNTIME = Runtime(
    data_dir=Path("/srv/lf"), ip="0.0.0.0", port=8000, hub_port=9001, proxy_api_port=9002
)


def build(text: str = "", runtime: Runtime = RUNTIME):
    return build_hub_settings(parse_text(text), runtime, SECRETS)


def test_defaults_bind_urls_db_and_secrets() -> None:
    s = build()
    hub = s["JupyterHub"]
    assert hub["bind_url"] == "http://0.0.0.0:8000/"
    assert hub["hub_bind_url"] == "http://127.0.0.1:9001"
    assert hub["db_url"] == "sqlite:////srv/lf/jupyterhub.sqlite"
    assert hub["cookie_secret"] == bytes.fromhex("ab" * 32)
    assert s["CryptKeeper"]["keys"] == [bytes.fromhex("cd" * 32)]
    assert s["ConfigurableHTTPProxy"]["auth_token"] == "p" * 64
    assert s["ConfigurableHTTPProxy"]["api_url"] == "http://127.0.0.1:9002"
    assert s["Spawner"]["default_url"] == "/lab"


def test_is_pure_same_input_same_output() -> None:
    assert build("culling: {timeout: 10m}") == build("culling: {timeout: 10m}")


def test_base_url_and_servers() -> None:
    s = build(
        "hub: {base_url: /jupyter/}\nservers: {named_servers: true, named_server_limit: 3,"
        " start_timeout: 5m}\n"
    )
    assert s["JupyterHub"]["bind_url"].endswith(":8000/jupyter/")
    assert s["JupyterHub"]["allow_named_servers"] is True
    assert s["JupyterHub"]["named_server_limit_per_user"] == 3
    assert s["Spawner"]["start_timeout"] == 300


def test_culler_service_from_config() -> None:
    s = build("culling: {timeout: 30m, every: 1m, max_age: 1d, users: true}")
    services = {svc["name"]: svc for svc in s["JupyterHub"]["services"]}
    cmd = services["idle-culler"]["command"]
    # labfleet up runs it through the wrapper that makes it die with the hub
    assert cmd[:3] == [sys.executable, "-m", "labfleet.up.die_with_parent"]
    assert cmd[3:6] == [sys.executable, "-m", "jupyterhub_idle_culler"]
    assert {"--timeout=1800", "--cull-every=60", "--max-age=86400", "--cull-users"} <= set(cmd)
    roles = {r["name"]: r for r in s["JupyterHub"]["load_roles"]}
    assert "delete:servers" in roles["idle-culler"]["scopes"]
    assert "admin:users" in roles["idle-culler"]["scopes"]


def test_culling_disabled_has_no_service() -> None:
    s = build("culling: {enabled: false}")
    assert "idle-culler" not in {svc["name"] for svc in s["JupyterHub"]["services"]}


def test_culler_command_defaults() -> None:
    assert "--timeout=3600" in culler_command(parse_text("").culling)


def test_proxy_kinds() -> None:
    ours = build()["ConfigurableHTTPProxy"]["command"]
    assert ours[0].endswith("/labfleet-proxy")
    chp = build("proxy: {kind: chp, chp_command: [/opt/chp]}")["ConfigurableHTTPProxy"]
    assert chp["command"] == ["/opt/chp"]
    workers = build("proxy: {workers: 4}")["ConfigurableHTTPProxy"]["command"]
    assert workers[-2:] == ["--workers", "4"]


def test_extra_config_wins_last() -> None:
    s = build(
        "hub:\n  extra_config:\n    JupyterHub: {shutdown_on_logout: true, "
        "concurrent_spawn_limit: 7}\n"
    )
    assert s["JupyterHub"]["shutdown_on_logout"] is True
    assert s["JupyterHub"]["concurrent_spawn_limit"] == 7


def test_db_url_from_environment_overrides_file() -> None:
    runtime = Runtime(data_dir=Path("/d"), db_url="postgresql://u:p@db/hub")
    assert build("hub: {db_url: 'sqlite:///x'}", runtime)["JupyterHub"]["db_url"] == (
        "postgresql://u:p@db/hub"
    )


def test_profiles_reach_spawners_as_plain_dicts() -> None:
    s = build("profiles:\n- {slug: big, display_name: Big, memory: 4G}\n")
    from labfleet.spawn.policy import profiles_from_setting

    (profile,) = profiles_from_setting(s["Spawner"]["labfleet_profiles"])
    assert profile.slug == "big" and profile.memory == 4 * 10**9


def test_apply_settings_to_traitlets_config() -> None:
    c = Config()
    apply_settings(c, build())
    assert c.JupyterHub.bind_url == "http://0.0.0.0:8000/"
    assert c.Spawner.default_url == "/lab"


def test_secrets_repr_is_redacted() -> None:
    assert "p" * 8 not in repr(SECRETS)


def test_log_redaction_hides_session_ids_and_tokens() -> None:
    import logging

    from labfleet.hub.log_redaction import RedactSecrets

    record = logging.LogRecord(
        "tornado.application",
        logging.INFO,
        __file__,
        1,
        "Setting new xsrf cookie for %r %r",
        (b"sess:abc", {}),
        None,
    )
    RedactSecrets().filter(record)
    assert "sess" not in record.getMessage()
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "GET /hub/api?token=abc123", (), None
    )
    RedactSecrets().filter(record)
    assert "abc123" not in record.getMessage()


def test_entry_resolves_db_url_reference_and_creates_state_dir(tmp_path: Path) -> None:
    from labfleet.hub.entry import configure

    config_file = tmp_path / "labfleet.yaml"
    config_file.write_text("hub: {db_url: 'env:HUB_DB'}\n")
    env = {
        "LABFLEET_CONFIG": str(config_file),
        "LABFLEET_DATA_DIR": str(tmp_path / "data"),
        "HUB_DB": "postgresql://u:p@db/hub",
    }
    c = Config()
    configure(c, env)
    assert c.JupyterHub.db_url == "postgresql://u:p@db/hub"
    assert (tmp_path / "data" / "state").is_dir()


def test_named_server_limits_by_group() -> None:
    from labfleet.spawn.policy import NamedServerLimit

    plain = build("servers: {named_servers: true, named_server_limit: 2}")
    assert plain["JupyterHub"]["named_server_limit_per_user"] == 2
    s = build(
        "servers:\n  named_servers: true\n  named_server_limit: 1\n"
        "  named_server_limits: {groups: {staff: 5}, users: {ann: 9}}\n"
    )
    limit = s["JupyterHub"]["named_server_limit_per_user"]
    assert isinstance(limit, NamedServerLimit)
    assert (limit.default, limit.by_group, limit.by_user) == (1, {"staff": 5}, {"ann": 9})
