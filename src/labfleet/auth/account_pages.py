"""Browser pages for password accounts: manage members, set and change passwords.

* ``/hub/accounts`` (admins, scope ``admin:users``; linked from the admin
  page): add a member (who gets a one-time set-password link), make a new
  link, reset a password (the old one stops working, sessions end, a link is
  made), grant/revoke admin, remove a member (servers stopped, sessions and
  tokens revoked, home archived or deleted).
* ``/hub/set-password/<token>``: the member chooses a password with the
  link (single use, expiring); then signs in normally.
* ``/hub/change-password``: a signed-in member changes their own password
  (the current one is checked through the login throttle); by default their
  other sessions end and their servers stop, and this browser stays signed in.

Everything goes through the same account store and rules as the CLI.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import ChoiceLoader, FileSystemLoader
from jupyterhub.handlers.base import BaseHandler
from jupyterhub.scopes import needs_scope
from tornado import web

from labfleet.auth.accounts import AccountError, NoSuchAccount
from labfleet.auth.home_archive import HomeDisposal
from labfleet.auth.hub_access import end_sessions, remove_hub_user, set_hub_admin
from labfleet.auth.invites import InvalidLink, create_link_token, lookup, open_invites, redeem
from labfleet.usernames import InvalidUsername, normalize_username

TEMPLATES = Path(__file__).with_name("templates")
_INSTALLED = "labfleet_account_templates"


def install_templates(settings: dict[str, Any]) -> None:
    """Put our templates first in the hub's jinja loaders (pages, plus the admin page link)."""
    if settings.get(_INSTALLED):
        return
    for key in ("jinja2_env", "jinja2_env_sync"):
        env = settings.get(key)
        if env is not None:
            env.loader = ChoiceLoader([FileSystemLoader(str(TEMPLATES)), env.loader])
    settings[_INSTALLED] = True


async def _blocking(func: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, func, *args)


class _AccountPage(BaseHandler):  # type: ignore[misc]
    @property
    def store(self) -> Any:
        return self.authenticator.store

    def link_url(self, token: str) -> str:
        proto = self.request.protocol
        host = self.request.host
        return f"{proto}://{host}{self.hub.base_url}set-password/{quote(token, safe='')}"

    async def show_page(self, template: str, **ns: Any) -> None:
        html = await self.render_template(template, **ns)
        self.finish(html)


class AccountsPage(_AccountPage):
    """``/hub/accounts``: the admin's view of password accounts."""

    async def _show(self, **ns: Any) -> None:
        accounts = await _blocking(self.store.list)
        invites = await _blocking(open_invites, self.store)
        await self.show_page(
            "labfleet-accounts.html",
            accounts=accounts,
            invites=invites,
            me=self.current_user,
            link_hours=round(self.authenticator.link_ttl / 3600),
            **ns,
        )

    @web.authenticated
    @needs_scope("admin:users")  # type: ignore[untyped-decorator]
    async def get(self) -> None:
        await self._show()

    @web.authenticated
    @needs_scope("admin:users")  # type: ignore[untyped-decorator]
    async def post(self) -> None:
        action = self.get_body_argument("action", "")
        raw = self.get_body_argument("name", "")
        try:
            name = normalize_username(raw)
            message, link = await self._act(action, name)
        except (AccountError, InvalidUsername) as exc:
            self.set_status(400)
            await self._show(error=str(exc))
            return
        await self._show(message=message, link=link, link_for=name if link else None)

    async def _act(self, action: str, name: str) -> tuple[str, str | None]:
        auth = self.authenticator
        if action == "add":
            admin = self.get_body_argument("admin", "") == "on"
            await _blocking(lambda: self.store.add(name, None, admin=admin))
            return f"added {name}; send them this link to set a password", await self._link(name)
        if action == "link":
            return f"new set-password link for {name} (older links stop working)", await self._link(
                name
            )
        if action == "reset":
            await _blocking(lambda: self.store.clear_password(name, end_sessions=False))
            await self._end(name)
            return (
                f"{name}'s password no longer works and their sessions ended; send this link",
                await self._link(name),
            )
        if action in ("grant", "revoke"):
            if name == self.current_user.name and action == "revoke":
                raise AccountError("you cannot revoke your own admin rights here")
            await _blocking(lambda: self.store.set_admin(name, action == "grant", record=False))
            user = self.find_user(name)
            if user is not None:
                set_hub_admin(self.db, user, action == "grant")
            return f"{'granted' if action == 'grant' else 'revoked'} admin rights of {name}", None
        if action == "remove":
            if name == self.current_user.name:
                raise AccountError("you cannot remove yourself")
            how: HomeDisposal = (
                "delete" if self.get_body_argument("home", "") == "delete" else "archive"
            )
            if not await _blocking(self.store.exists, name):
                raise NoSuchAccount(f"no account {name!r}")
            user = self.find_user(name)
            if user is not None:
                await remove_hub_user(self, user)
            where = await _blocking(auth.forget_member, name, how)
            kept = f"; files moved to {where}" if where else ""
            return f"removed {name}{kept}", None
        raise AccountError(f"unknown action {action!r}")

    async def _link(self, name: str) -> str:
        token = await _blocking(create_link_token, self.store, name, self.authenticator.link_ttl)
        return self.link_url(token)

    async def _end(self, name: str) -> None:
        user = self.find_user(name)
        if user is not None:
            await end_sessions(self, user)


class SetPasswordPage(_AccountPage):
    """``/hub/set-password/<token>``: no login needed; the link is the credential."""

    async def get(self, token: str) -> None:
        invite = await _blocking(lookup, self.store, token)
        if invite is None:
            self.set_status(404)
        await self.show_page(
            "labfleet-set-password.html", invite=invite, error=None, done=False, token=token
        )

    async def post(self, token: str) -> None:
        password = self.get_body_argument("password", "")
        confirm = self.get_body_argument("confirm", "")
        invite = await _blocking(lookup, self.store, token)
        error = None
        if invite is None:
            error = str(InvalidLink())
        elif password != confirm:
            error = "the two passwords differ"
        else:
            try:
                await _blocking(redeem, self.store, token, password, self.authenticator.min_length)
            except AccountError as exc:
                error = str(exc)
        if error is not None:
            self.set_status(400)
        await self.show_page(
            "labfleet-set-password.html",
            invite=invite,
            error=error,
            done=error is None,
            token=token,
            login_url=self.settings.get("login_url", self.hub.base_url + "login"),
        )


class ChangePasswordPage(_AccountPage):
    """``/hub/change-password`` for the signed-in member."""

    @web.authenticated
    async def get(self) -> None:
        await self.show_page("labfleet-change-password.html", error=None, done=False)

    @web.authenticated
    async def post(self) -> None:
        user = self.current_user
        current = self.get_body_argument("current", "")
        new = self.get_body_argument("password", "")
        confirm = self.get_body_argument("confirm", "")
        end_others = self.get_body_argument("end_sessions", "") == "on"
        error = None
        if new != confirm:
            error = "the two new passwords differ"
        elif not await self.authenticator.check_current_password(self, user.name, current):
            error = "the current password is not right"
        else:
            try:
                await _blocking(
                    lambda: self.store.set_password(
                        user.name, new, min_length=self.authenticator.min_length
                    )
                )
            except AccountError as exc:
                error = str(exc)
        if error is not None:
            self.set_status(400)
            await self.show_page("labfleet-change-password.html", error=error, done=False)
            return
        if end_others:
            await end_sessions(self, user)
            self.set_login_cookie(user)  # this browser stays signed in, with the new cookie id
        await self.show_page(
            "labfleet-change-password.html", error=None, done=True, ended=end_others
        )
