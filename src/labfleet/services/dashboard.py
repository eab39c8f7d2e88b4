"""The usage dashboard: a JupyterHub service at ``/services/dashboard/``, behind hub OAuth.

Admins see everyone; a member sees their own servers. The hub starts it
(``hub.settings`` adds it to ``JupyterHub.services``), so it lives and dies
with the hub. Every few seconds it samples the hub's API and the servers'
control groups into a bounded history file; a page view renders plots from
that history, ``/hub/metrics`` and the hub's log as inline SVG.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import time
import urllib.request
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated
from tornado import ioloop, web

from labfleet.naming import server_slug
from labfleet.services.history import (
    HISTORY_NAME,
    HistoryFile,
    LogCursor,
    Sample,
    culls_in_log,
    spawn_histogram,
)
from labfleet.services.plots import bar_chart, line_chart
from labfleet.spawn.diagnose import ServerEnd, human_bytes, last_end
from labfleet.up.hubapi import HubAPI
from labfleet.up.running import add_usage, servers_from_users

PR_SET_PDEATHSIG = 1


class Collector:
    """Samples usage into the history file (effects: the hub API, cgroups, the log)."""

    def __init__(self, api: HubAPI, data_dir: Path, limits_mode: str) -> None:
        self.api = api
        self.data_dir = data_dir
        self.limits_mode = limits_mode
        self.history = HistoryFile(data_dir / "state" / HISTORY_NAME)
        self.log = LogCursor(data_dir / "logs" / "hub.log")

    def sample(self) -> Sample:
        users = self.api.users("active")  # every page of them
        rows = servers_from_users(users, time.time())
        add_usage(rows, self.data_dir, self.limits_mode)
        servers = {
            (r.user if not r.name else f"{r.user}/{r.name}"): {
                "user": r.user,
                "profile": r.profile or "default",
                "memory": r.memory_bytes,
                "cpu": r.cpu_seconds,
                "ready": r.ready,
                "gpus": r.gpus,
            }
            for r in rows
        }
        sample = Sample(time.time(), servers, culls_in_log(self.log.new_text()))
        self.history.append(sample)
        return sample


def _metrics(api_url: str, token: str) -> str:
    url = api_url.rstrip("/").rsplit("/api", 1)[0] + "/metrics"
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - loopback hub
            return str(resp.read().decode())
    except OSError:
        return ""


def gpu_count(devices: str | None) -> int:
    """GPUs in a ledger assignment as status shows it (``"0, 1"``, MIG/GPU UUIDs)."""
    return len([d for d in (devices or "").split(",") if d.strip()])


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t).strftime("%H:%M:%S")


def render_page(
    samples: list[Sample],
    metrics_text: str,
    viewer: str,
    admin: bool,
    title: str,
    ends: list[ServerEnd] | None = None,
) -> str:
    """Pure: the dashboard page for ``viewer`` (everyone's rows when ``admin``)."""

    def visible(servers: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in servers.items() if admin or v.get("user") == viewer}

    recent = samples[-300:]
    active = [(s.t, float(len({v["user"] for v in visible(s.servers).values()}))) for s in recent]
    labels = (_clock(recent[0].t), _clock(recent[-1].t)) if recent else ("", "")
    latest = visible(recent[-1].servers) if recent else {}
    by_profile: dict[str, float] = {}
    for server in latest.values():
        by_profile[server["profile"]] = by_profile.get(server["profile"], 0) + 1
    memory = [(k, (v.get("memory") or 0) / 2**20) for k, v in sorted(latest.items())]
    cpu = [(k, float(v.get("cpu") or 0)) for k, v in sorted(latest.items())]
    gpus_in_use = [
        (s.t, float(sum(gpu_count(v.get("gpus")) for v in visible(s.servers).values())))
        for s in recent
    ]
    gpus = [(k, float(gpu_count(v.get("gpus")))) for k, v in sorted(latest.items())]
    culls: dict[str, float] = {}
    for sample in samples:
        for user in sample.culled:
            if admin or user == viewer:
                culls[user] = culls.get(user, 0) + 1
    plots = [
        ("Active users over time", line_chart("Active users over time", active, labels)),
        (
            "Spawn latency (successful spawns)",
            bar_chart("Spawn latency", spawn_histogram(metrics_text), " spawns"),
        ),
        ("Servers by profile", bar_chart("Servers by profile", sorted(by_profile.items()))),
        ("Memory per server (MiB)", bar_chart("Memory per server", memory, " MiB")),
        ("CPU time per server (s)", bar_chart("CPU time per server", cpu, " s")),
        ("Culled idle servers", bar_chart("Culled idle servers", sorted(culls.items()))),
        ("GPUs in use over time", line_chart("GPUs in use over time", gpus_in_use, labels)),
        (
            "GPUs per server",
            bar_chart("GPUs per server", gpus, " GPUs", none="no GPUs assigned"),
        ),
    ]
    rows = "".join(
        f"<tr><td>{escape(k)}</td><td>{escape(v['profile'])}</td>"
        f"<td>{'ready' if v.get('ready') else 'starting'}</td>"
        f"<td>{human_bytes(v['memory']) if v.get('memory') is not None else '-'}</td>"
        f"<td>{'{:.1f} s'.format(v['cpu']) if v.get('cpu') is not None else '-'}</td></tr>"
        for k, v in sorted(latest.items())
    )
    mine = server_slug(viewer, "")
    shown_ends = [e for e in ends or [] if admin or e.slug == mine or e.slug.startswith(mine + "-")]
    end_rows = "".join(
        f"<tr><td>{escape(e.slug)}</td><td>{_clock(e.when)}</td><td>{escape(e.message)}</td></tr>"
        for e in sorted(shown_ends, key=lambda e: -e.when)
    )
    figures = "".join(
        f'<figure class="lf-figure"><figcaption>{escape(c)}</figcaption>{svg}</figure>'
        for c, svg in plots
    )
    scope = "everyone (you are an admin)" if admin else "your own servers"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)} — usage</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }}
.lf-grid {{ display: flex; flex-wrap: wrap; gap: 1rem; }}
figure {{ margin: 0; }} figcaption {{ font-weight: 600; margin-bottom: .25rem; }}
table {{ border-collapse: collapse; margin-top: 1rem; }}
td, th {{ border: 1px solid #ddd; padding: .25rem .6rem; text-align: left; }}
</style></head>
<body>
<h1>{escape(title)}: usage</h1>
<p>Signed in as <strong>{escape(viewer)}</strong>; showing {scope}.
<a href="/hub/home">Back to the hub</a></p>
<div class="lf-grid">{figures}</div>
<h2>Servers now</h2>
<table id="lf-servers"><tr><th>server</th><th>profile</th><th>state</th><th>memory</th>
<th>CPU time</th></tr>{rows or '<tr><td colspan="5">none running</td></tr>'}</table>
<h2>Servers that stopped unexpectedly</h2>
<table id="lf-ends"><tr><th>server</th><th>when</th><th>what happened</th></tr>
{end_rows or '<tr><td colspan="3">none</td></tr>'}</table>
</body></html>"""


class DashboardHandler(HubOAuthenticated, web.RequestHandler):  # type: ignore[misc]
    @web.authenticated
    async def get(self) -> None:
        viewer = self.get_current_user()["name"]
        app: DashboardApp = self.settings["labfleet_dashboard"]
        admin = await asyncio.to_thread(app.is_admin, viewer)
        metrics = await asyncio.to_thread(_metrics, app.api_url, app.token)
        ends = await asyncio.to_thread(app.ends)
        history = app.collector.history.read()
        page = render_page(history, metrics, viewer, admin, app.title, ends)
        self.set_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
        self.finish(page)


class DashboardApp:
    def __init__(self, environ: dict[str, str]) -> None:
        self.api_url = environ["JUPYTERHUB_API_URL"]
        self.token = environ["JUPYTERHUB_API_TOKEN"]
        self.prefix = environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/dashboard/")
        self.bind = urlsplit(environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101"))
        self.title = environ.get("LABFLEET_BRAND_NAME") or "labfleet"
        self.every = float(environ.get("LABFLEET_DASHBOARD_EVERY", "30"))
        api = HubAPI(self.api_url, self.token)
        data_dir = Path(environ["LABFLEET_DATA_DIR"])
        self.collector = Collector(api, data_dir, environ.get("LABFLEET_LIMITS", "auto"))
        self.api = api

    def ends(self) -> list[ServerEnd]:
        state = self.collector.data_dir / "state"
        found = (last_end(state, path.stem) for path in sorted((state / "ends").glob("*.json")))
        return [end for end in found if end is not None]

    def is_admin(self, name: str) -> bool:
        from urllib.parse import quote

        try:
            model = self.api.request("GET", f"/users/{quote(name, safe='')}")
        except OSError:
            return False
        return bool(model and model.get("admin"))

    async def sample_forever(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.collector.sample)
            except Exception as exc:  # a hub restarting: try again at the next tick
                print(f"dashboard: sampling failed: {exc}", file=sys.stderr, flush=True)
            await asyncio.sleep(self.every)

    def make_app(self) -> web.Application:
        auth = HubOAuth(api_token=self.token, cache_max_age=60)
        return web.Application(
            [
                (self.prefix, DashboardHandler),
                (self.prefix.rstrip("/"), web.RedirectHandler, {"url": self.prefix}),
                (self.prefix + "oauth_callback", HubOAuthCallbackHandler),
            ],
            hub_auth=auth,
            cookie_secret=os.urandom(32),
            labfleet_dashboard=self,
        )


async def _main() -> None:
    app = DashboardApp(dict(os.environ))
    app.make_app().listen(app.bind.port or 10101, app.bind.hostname or "127.0.0.1")
    await app.sample_forever()


def die_with_the_hub() -> None:
    """Ask the kernel to end us when the hub (our parent) dies, even by SIGKILL.

    A reload or crash restarts the hub, which starts a fresh dashboard with a
    fresh token; an old one left running would hold the port with a dead token.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() == 1:  # the hub died before we asked
        sys.exit(0)


def main() -> None:
    die_with_the_hub()
    ioloop.IOLoop.current()  # the asyncio loop tornado uses
    # The hub stops its services with SIGINT: a normal end, not a traceback in hub.log.
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main())


if __name__ == "__main__":
    main()
