"""``kubernetes.backup``: a CronJob running ``labfleet backup`` (issue 15), checked three ways.

* the rendered objects (pure): schedule, the hub's environment and data volume, the
  archive claim, pruning to ``keep``, scheduling next to the hub for its RWO sqlite volume;
* the strict API double: the CronJob and claim are schema-valid and accepted by apply,
  and the job's pod passes Pod Security "restricted";
* the job's shell script itself, run here with a stand-in ``labfleet`` on PATH, so
  the pruning and the never-half-written archive are real behaviour, not string matching.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labfleet.config.load import ConfigError, parse_text
from labfleet.kube.apply import Cluster, apply, connect
from labfleet.kube.checks import kube_warnings
from labfleet.kube.render import render_objects
from tests.kube.double import KubeDouble, running_double
from tests.kube.double.pod_security import violations
from tests.kube.test_render_helpers import FIXED_SECRETS

BASE = """
name: lab
auth:
  kind: dummy
kubernetes:
  namespace: lab
  backup:
    schedule: "30 2 * * *"
    keep: 3
"""


def _render(text: str = BASE) -> list[dict[str, Any]]:
    return render_objects(parse_text(text), FIXED_SECRETS)


def _cronjob(objects: list[dict[str, Any]]) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == "CronJob"]
    assert len(found) == 1, "one CronJob rendered"
    return found[0]


def _pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = _cronjob(objects)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return spec


def _hub(objects: list[dict[str, Any]]) -> dict[str, Any]:
    hub = next(
        o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "lab-hub"
    )
    spec: dict[str, Any] = hub["spec"]["template"]["spec"]
    return spec


def test_no_backup_section_renders_no_cronjob() -> None:
    objects = _render(BASE.split("  backup:")[0])
    assert not [o for o in objects if o["kind"] == "CronJob"]
    assert not [o for o in objects if o["metadata"]["name"] == "lab-backups"]


def test_cronjob_runs_labfleet_backup_with_the_hubs_environment_and_volume() -> None:
    objects = _render()
    cron = _cronjob(objects)
    assert cron["apiVersion"] == "batch/v1"
    assert cron["metadata"]["namespace"] == "lab"
    assert cron["spec"]["schedule"] == "30 2 * * *"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"  # never two snapshots at once
    pod = _pod(objects)
    container = pod["containers"][0]
    script = container["args"][-1]
    assert "labfleet backup" in script and "--keep" not in script
    hub = _hub(objects)["containers"][0]
    assert container["image"] == hub["image"]
    env = {e["name"]: e for e in container["env"]}
    for name in ("LABFLEET_CONFIG", "LABFLEET_DATA_DIR", "LABFLEET_PLATFORM"):
        assert env[name] == next(e for e in hub["env"] if e["name"] == name)
    secret_env = [e for e in hub["env"] if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]]
    assert secret_env and all(e in container["env"] for e in secret_env)  # secrets archived
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "lab-hub-db"
    assert volumes["backups"]["persistentVolumeClaim"]["claimName"] == "lab-backups"
    assert volumes["config"]["secret"]["secretName"] == "lab-config"
    # the sqlite volume is ReadWriteOnce: the job must run on the hub's node
    term = pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "hub"
    assert pod["automountServiceAccountToken"] is False
    assert violations("restricted", pod) == []


def test_the_archive_claim_is_rendered_and_kept_on_destroy() -> None:
    claim = next(
        o
        for o in _render()
        if o["kind"] == "PersistentVolumeClaim" and o["metadata"]["name"] == "lab-backups"
    )
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert claim["metadata"]["annotations"]["labfleet.io/destroy-policy"] == (
        "keep-unless-delete-user-data"
    )


def test_an_existing_claim_a_passphrase_and_postgres() -> None:
    text = (
        BASE
        + "    claim: nightly\n    passphrase: {secret: backup-key}\n"
        + "  hub:\n    database: {kind: postgres, secret_name: hub-db}\n"
    )
    objects = _render(text)
    assert not [o for o in objects if o["metadata"]["name"] == "lab-backups"]
    pod = _pod(objects)
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["backups"]["persistentVolumeClaim"]["claimName"] == "nightly"
    assert "data" not in volumes or "emptyDir" in volumes["data"]
    assert "affinity" not in pod  # nothing ties a PostgreSQL hub's job to a node
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    ref = env["LABFLEET_BACKUP_PASSPHRASE"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "backup-key", "key": "passphrase"}
    assert "LABFLEET_DB_URL" in env
    # the hub image carries pg_dump (tests/containers/test_images.py checks it): no warning
    assert not [w for w in kube_warnings(parse_text(text)) if "pg_dump" in w]
    # without a passphrase the archives (the hub's secrets in them) are not encrypted: say so
    assert [w for w in kube_warnings(parse_text(BASE)) if "not encrypted" in w]
    assert not [w for w in kube_warnings(parse_text(text)) if "not encrypted" in w]


def test_bad_schedule_is_refused_with_the_key_path() -> None:
    with pytest.raises(ConfigError, match=r"kubernetes\.backup\.schedule.*cron"):
        parse_text(BASE.replace('"30 2 * * *"', '"every night"'))


# -- the API double --------------------------------------------------------------------------


@pytest.fixture
def double() -> Iterator[KubeDouble]:
    with running_double() as running:
        yield running


def test_apply_creates_the_cronjob_in_the_double(double: KubeDouble, tmp_path: Path) -> None:
    kubeconfig = double.write_kubeconfig(tmp_path / "kubeconfig", namespace="lab")
    cluster = Cluster(connect(kubeconfig))
    result = apply(cluster, _render(), poll=0.1, timeout=30)
    assert result.rollout is not None and result.rollout.ready
    cron = double.get("batch/v1", "CronJob", "lab-backup", "lab")
    assert cron is not None and cron["spec"]["schedule"] == "30 2 * * *"
    assert double.get("v1", "PersistentVolumeClaim", "lab-backups", "lab") is not None


# -- the job's script, run for real ------------------------------------------------------------


def _fake_labfleet(bin_dir: Path) -> None:
    """Stands in for the image's labfleet: writes the -o file like the real command."""
    bin_dir.mkdir()
    tool = bin_dir / "labfleet"
    tool.write_text(
        '#!/bin/sh\n[ "$1" = backup ] || exit 9\nshift\n'
        'while [ $# -gt 0 ]; do [ "$1" = -o ] && out=$2; shift; done\n'
        '[ -n "$FAIL" ] && { echo half > "$out"; exit 1; }\necho archive > "$out"\n'
    )
    tool.chmod(0o755)


def _run_script(tmp_path: Path, backups: Path, **env: str) -> subprocess.CompletedProcess[str]:
    script = _pod(_render())["containers"][0]["args"][-1]
    script = script.replace("/backups", str(backups))
    path = f"{tmp_path / 'bin'}:{os.environ['PATH']}"
    return subprocess.run(
        ["/bin/sh", "-c", script],
        env={"PATH": path, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_script_keeps_the_newest_and_never_leaves_a_partial_archive(
    tmp_path: Path,
) -> None:
    _fake_labfleet(tmp_path / "bin")
    backups = tmp_path / "backups"
    backups.mkdir()
    for day in range(1, 6):  # five older archives, oldest first
        old = backups / f"lab-2026010{day}T030000Z.labfleet-backup"
        old.write_text("old")
        os.utime(old, (1_700_000_000 + day, 1_700_000_000 + day))
    done = _run_script(tmp_path, backups)
    assert done.returncode == 0, done.stderr
    left = sorted(p.name for p in backups.iterdir())
    assert len(left) == 3  # keep: 3, the new one included
    assert "lab-20260105T030000Z.labfleet-backup" in left
    assert "lab-20260104T030000Z.labfleet-backup" in left
    assert sum("2026010" not in name for name in left) == 1  # the new archive

    failed = _run_script(tmp_path, backups, FAIL="1")
    assert failed.returncode != 0  # the Job fails and Kubernetes reports it
    assert sorted(p.name for p in backups.iterdir()) == left  # nothing pruned, nothing partial


# -- the job as rendered, with the real labfleet backup ------------------------------------------


def _rendered_job_env(objects: list[dict[str, Any]], paths: dict[str, Path]) -> dict[str, str]:
    """The CronJob container's environment, resolved as the kubelet would: secretKeyRefs from
    the rendered Secrets, the image's paths moved into this test's folders."""
    secrets = {o["metadata"]["name"]: o["data"] for o in objects if o["kind"] == "Secret"}
    env: dict[str, str] = {}
    for item in _pod(objects)["containers"][0]["env"]:
        if "value" in item:
            value = item["value"]
            for inside, outside in paths.items():
                if value == inside or value.startswith(inside + "/"):
                    value = str(outside) + value[len(inside) :]
                    break
            env[item["name"]] = value
            continue
        ref = item["valueFrom"].get("secretKeyRef")
        if ref is not None:
            env[item["name"]] = base64.b64decode(secrets[ref["name"]][ref["key"]]).decode()
    return env


def test_the_rendered_job_makes_a_restorable_archive_with_the_real_labfleet(
    tmp_path: Path,
) -> None:
    from sqlalchemy import create_engine, text

    objects = _render()
    config_dir, data_dir, backups = tmp_path / "etc", tmp_path / "srv", tmp_path / "backups"
    for folder in (config_dir, data_dir, backups):
        folder.mkdir()
    # the config Secret, mounted as a file, as in the hub pod
    config_secret = next(
        o for o in objects if o["kind"] == "Secret" and "config" in o["metadata"]["name"]
    )
    for key, value in config_secret["data"].items():
        (config_dir / key).write_bytes(base64.b64decode(value))
    # a hub database with one user in it, where the hub pod keeps it
    engine = create_engine(f"sqlite:///{data_dir / 'jupyterhub.sqlite'}")
    with engine.begin() as db:
        db.execute(text("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)"))
        db.execute(text("INSERT INTO users (name) VALUES ('alice')"))
    engine.dispose()
    env = _rendered_job_env(
        objects, {"/etc/labfleet": config_dir, "/srv/labfleet": data_dir, "/tmp": tmp_path}
    )
    assert env["LABFLEET_PLATFORM"] == "kubernetes"
    venv_bin = Path(sys.executable).parent
    env["PATH"] = f"{venv_bin}:{os.environ['PATH']}"
    script = _pod(objects)["containers"][0]["args"][-1].replace("/backups", str(backups))
    done = subprocess.run(
        ["/bin/sh", "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr + done.stdout
    [archive] = list(backups.iterdir())
    restored = tmp_path / "restored"
    back = subprocess.run(
        [str(venv_bin / "labfleet"), "restore", str(archive), "--data-dir", str(restored)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert back.returncode == 0, back.stderr
    engine = create_engine(f"sqlite:///{restored / 'jupyterhub.sqlite'}")
    with engine.connect() as db:
        assert db.execute(text("SELECT name FROM users")).scalars().all() == ["alice"]
    engine.dispose()
    # the hub Secret's values travel in the archive (so a lost Secret can be put back)
    assert (restored / "secrets" / "cookie_secret").read_text().strip() == "aa" * 32
