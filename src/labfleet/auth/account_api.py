"""Hub REST endpoints that make account changes take effect at once.

* ``POST /hub/api/labfleet/access`` (scope ``admin:users``): apply every change
  the account store has recorded (the CLI calls it after changing an account).
* ``/hub/api/users/<name>`` replaces JupyterHub's handler of the same path for
  the password authenticator, so the admin page follows the same rules as the
  CLI: deleting a user stops all their servers (named ones too), revokes
  sessions and tokens, removes the password account and archives the home;
  toggling admin updates the account. Deletions by the services named in
  ``PasswordAuthenticator.keep_accounts_for_services`` (the idle culler, which
  deletes *inactive hub users*, not members) only remove the hub user.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.apihandlers.users import UserAPIHandler
from jupyterhub.scopes import needs_scope
from tornado import web

from labfleet.auth.accounts import NoSuchAccount
from labfleet.auth.hub_access import apply_changes, end_sessions


class AccessChangesAPIHandler(APIHandler):  # type: ignore[misc]
    @needs_scope("admin:users")  # type: ignore[untyped-decorator]
    async def post(self) -> None:
        auth = self.authenticator
        done = await apply_changes(self, auth.store, auth.admin_users)
        self.write(json.dumps({"applied": done}))


class AccountAwareUserAPIHandler(UserAPIHandler):  # type: ignore[misc]
    def _keeps_account(self) -> bool:
        actor = self.current_user
        keep = set(getattr(self.authenticator, "keep_accounts_for_services", ()))
        return getattr(actor, "kind", "user") == "service" and actor.name in keep

    @needs_scope("delete:users")  # type: ignore[untyped-decorator]
    async def delete(self, user_name: str) -> None:
        if self._keeps_account():
            await super().delete(user_name)
            return
        user = self.find_user(user_name)
        if user is None:
            raise web.HTTPError(404)
        if user.name == self.current_user.name:
            raise web.HTTPError(400, "Cannot delete yourself!")
        await end_sessions(self, user)
        name = user.name
        await super().delete(user_name)
        self.authenticator.forget_member(name)

    @needs_scope("admin:users")  # type: ignore[untyped-decorator]
    async def patch(self, user_name: str) -> None:
        data: Any = self.get_json_body() or {}
        if isinstance(data, dict) and data.get("name") not in (None, user_name):
            # the account, its home and its system account are all keyed on the name
            raise web.HTTPError(
                400, "Password accounts cannot be renamed: add the new name, remove the old one"
            )
        await super().patch(user_name)
        if isinstance(data, dict) and "admin" in data:
            with contextlib.suppress(NoSuchAccount):
                self.authenticator.store.set_admin(user_name, bool(data["admin"]), record=False)
