"""Show a full disk, a read-only data dir or a locked database as what it is, on every hub page.

Left alone, JupyterHub turns such a fault into misleading answers: a failed
database write while authenticating a request is swallowed in ``prepare`` and
the request carries on *unauthenticated* (a spawn then says 403 "Missing or
invalid credentials"), and one inside a handler is a bare 500. Installed from
``jupyterhub_config.py`` (the hub process only), this wraps four methods of
JupyterHub's ``BaseHandler`` (the API handlers derive from it):

* ``get_current_user`` remembers a storage fault it hit (and still raises, as before);
* ``prepare`` turns a remembered fault into an HTTP error instead of going on as nobody;
* ``spawn_single_user`` turns a storage fault into that HTTP error too (the spawn
  page otherwise reports a spawn that failed within a second as "Unhandled error
  starting server", its cause dropped);
* ``_handle_request_exception`` answers any uncaught storage fault with 507
  (disk full) or 503 (read-only, locked, I/O errors) and the words of
  ``storage_errors.explain``, after rolling the session back so the next request
  starts clean. SQLite's vague "unable to open database file" (what a database
  opened before its disk went read-only says) is named by a write probe in the
  data dir (``free_space.write_probe``).

Nothing is retried or cached: once there is room again, the next request works.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labfleet.hub.free_space import write_probe
from labfleet.hub.storage_errors import StorageProblem, classify, explain, http_status
from labfleet.runtime import Runtime

_log = logging.getLogger("labfleet.hub.storage")
_MARK = "_labfleet_storage_problem"
_installed: list[bool] = []


def storage_http_error(problem: StorageProblem, where: Path | None) -> Exception:
    """A tornado HTTPError whose message JupyterHub shows on its error page and in API JSON."""
    from tornado import web

    message = explain(problem, where)
    error = web.HTTPError(http_status(problem), "%s", message)
    error.jupyterhub_message = message  # type: ignore[attr-defined]  # read by JupyterHub
    return error


def _rollback(handler: Any) -> None:
    try:
        handler.db.rollback()
    except Exception:  # a second storage error must not hide the first
        _log.debug("rollback after a storage fault failed too", exc_info=True)


def install(data_dir: Path | None = None) -> None:
    """Wrap JupyterHub's BaseHandler once per process (idempotent)."""
    if _installed:
        return
    from jupyterhub.handlers.base import BaseHandler
    from tornado import web

    where = data_dir or Runtime.from_env(dict(os.environ)).data_dir

    def probe() -> OSError | None:  # asked only for SQLite's vague "unable to open" / I/O
        return write_probe(where)

    get_current_user: Callable[..., Any] = BaseHandler.get_current_user
    prepare: Callable[..., Any] = BaseHandler.prepare
    handle: Callable[..., Any] = BaseHandler._handle_request_exception
    spawn_single_user: Callable[..., Any] = BaseHandler.spawn_single_user

    @functools.wraps(get_current_user)
    async def remembering_get_current_user(self: Any) -> Any:
        try:
            return await get_current_user(self)
        except Exception as exc:
            problem = classify(exc, probe)
            if problem is not None:
                setattr(self, _MARK, problem)
            raise

    @functools.wraps(prepare)
    async def refusing_prepare(self: Any) -> None:
        try:
            await prepare(self)
        finally:
            problem: StorageProblem | None = getattr(self, _MARK, None)
            if problem is not None:
                _rollback(self)
                raise storage_http_error(problem, where)

    @functools.wraps(handle)
    def explaining_handle(self: Any, e: BaseException) -> None:
        problem = classify(e, probe) if not getattr(e, "jupyterhub_message", None) else None
        if problem is None:
            return handle(self, e)  # type: ignore[no-any-return]
        _log.error("%s %s: %s", self.request.method, self.request.path, explain(problem, where))
        _rollback(self)
        try:
            raise storage_http_error(problem, where) from e
        except Exception as replaced:  # tornado reads sys.exc_info()
            assert sys.exc_info()[1] is replaced
            return handle(self, replaced)  # type: ignore[no-any-return]

    @functools.wraps(spawn_single_user)
    async def naming_spawn_single_user(self: Any, *args: Any, **kwargs: Any) -> Any:
        # the spawn page waits 1 s for a spawn and turns any failure that is not an
        # HTTPError into "Unhandled error starting server" (the cause dropped): name it here
        try:
            return await spawn_single_user(self, *args, **kwargs)
        except Exception as exc:
            problem = classify(exc, probe) if not isinstance(exc, web.HTTPError) else None
            if problem is None:
                raise
            _rollback(self)
            raise storage_http_error(problem, where) from exc

    BaseHandler.spawn_single_user = naming_spawn_single_user
    BaseHandler.get_current_user = remembering_get_current_user
    BaseHandler.prepare = refusing_prepare
    BaseHandler._handle_request_exception = explaining_handle
    _installed.append(True)


def announce_low_disk(c: Any, environ: dict[str, str] | None = None) -> None:
    """Show admins a low-disk warning on every hub page (JupyterHub's announcement slot)."""
    from labfleet.config.load import load_config
    from labfleet.hub.free_space import low_disk_announcement

    env = dict(os.environ if environ is None else environ)
    runtime = Runtime.from_env(env)
    if runtime.platform == "kubernetes":  # the hub pod's volume is watched by the cluster
        return
    minimum = load_config(env.get("LABFLEET_CONFIG") or None).local.min_free_space
    variables = dict(c.JupyterHub.template_vars) if "template_vars" in c.JupyterHub else {}
    existing = variables.get("announcement")
    kept = existing if isinstance(existing, str) or callable(existing) else None
    variables["announcement"] = low_disk_announcement(runtime.data_dir, minimum, kept)
    c.JupyterHub.template_vars = variables
