"""Prometheus can scrape the hub and the proxy with their tokens, and nobody else can.

docs/operating.md "Monitoring" documents the scrape config these requests stand for.
"""

from __future__ import annotations

import json

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import TEST_PROXY
from tests.ops.helpers import cli
from tests.support.platform import Platform

pytestmark = pytest.mark.integration


def test_hub_and_proxy_metrics_and_backup_age(make_platform, tmp_path) -> None:
    platform: Platform = make_platform("culling: {enabled: false}\n")
    platform.start()
    data = platform.data_dir
    metrics_token = (data / "secrets" / "metrics_token").read_text().strip()
    url = f"{platform.url}/hub/metrics"
    assert httpx.get(url).status_code == 403
    scraped = httpx.get(url, headers={"Authorization": f"Bearer {metrics_token}"})
    assert scraped.status_code == 200
    names = {f.name for f in text_string_to_metric_families(scraped.text)}
    assert "jupyterhub_server_spawn_duration_seconds" in names
    # the scrape token reads metrics and nothing else
    users = httpx.get(
        f"{platform.url}/hub/api/users", headers={"Authorization": f"token {metrics_token}"}
    )
    assert users.status_code == 403

    if TEST_PROXY != "chp":
        port = json.loads((data / "state" / "ports.json").read_text())["proxy_api"]
        proxy_url = f"http://127.0.0.1:{port}/metrics"
        assert httpx.get(proxy_url).status_code == 403
        proxy_token = (data / "secrets" / "proxy_token").read_text().strip()
        proxy = httpx.get(proxy_url, headers={"Authorization": f"token {proxy_token}"})
        assert proxy.status_code == 200 and "labfleet_proxy" in proxy.text

    made = cli("backup", "--data-dir", str(data), "-o", str(tmp_path / "b.tar.gz"))
    assert made.returncode == 0, made.stderr
    prom = (data / "state" / "metrics" / "labfleet_backup.prom").read_text()
    gauges = {s.name: s.value for f in text_string_to_metric_families(prom) for s in f.samples}
    assert gauges["labfleet_backup_last_success_timestamp_seconds"] > 0
    assert gauges["labfleet_backup_last_size_bytes"] == (tmp_path / "b.tar.gz").stat().st_size
    assert platform.stop() == 0
