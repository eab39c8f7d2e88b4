"""ProfileChoiceMixin: the spawn form and the server-side enforcement of profile policy.

Mix it into a Spawner *before* the spawner class
(``class LocalSpawner(ProfileChoiceMixin, Spawner)``) and implement
:meth:`ProfileChoiceMixin.apply_profile`. What it guarantees:

* the form lists only the profiles the user may start (all text escaped);
* every spawn, whether from the form, ``/hub/spawn?profile=...`` or
  ``POST /hub/api/users/<name>/server`` with ``user_options``, is checked
  against :mod:`labfleet.spawn.policy` before anything starts: a forbidden
  or unknown profile, or an unknown option, is an HTTP 403 with the reason;
* groups are read from ``self.user.groups`` at each spawn, so a group change
  applies to the next start.

JupyterHub 6 runs ``apply_user_options`` and then ``run_pre_spawn_hook``
inside ``User.spawn``, before ``Spawner.start``; an ``HTTPError`` there is
passed through to the API caller and the form, and the half-made spawn is
cleaned up by JupyterHub (``Spawner.stop`` is called on a server that never
started, so ``stop`` must tolerate that).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from tornado import web
from traitlets import Dict, HasTraits, List, default

from labfleet.config.profiles import Profile
from labfleet.spawn.diagnose import human_bytes
from labfleet.spawn.policy import (
    PROFILE_OPTION,
    PolicyError,
    Requester,
    allowed_profiles,
    default_for,
    profiles_from_setting,
    resolve_user_options,
)

_IGNORED_FORM_FIELDS = frozenset({"_xsrf"})


def _summary(profile: Profile) -> str:
    parts: list[str] = []
    if profile.cpu:
        parts.append(f"{profile.cpu:g} CPU")
    if profile.memory:
        parts.append(f"{human_bytes(profile.memory)} memory")
    if profile.gpus:
        parts.append(f"{profile.gpus} GPU" + ("s" if profile.gpus > 1 else ""))
    if profile.image:
        parts.append(profile.image)
    return ", ".join(parts)


def render_profile_form(
    profiles: list[Profile], selected: str, environments: Mapping[str, str] | None = None
) -> str:
    """Radio buttons for ``profiles``; every configured string is HTML-escaped.

    ``environments``: what each profile's ``environment`` holds (one line, e.g. its
    packages and versions from the environment's manifest), shown under its name.
    """
    rows = []
    for profile in profiles:
        contents = (environments or {}).get(profile.environment or "", "")
        slug = html.escape(profile.slug, quote=True)
        checked = " checked" if profile.slug == selected else ""
        description = html.escape(profile.description)
        summary = html.escape(_summary(profile))
        details = " — ".join(part for part in (description, summary) if part)
        rows.append(
            '<div class="radio labfleet-profile">'
            f'<label><input type="radio" name="{PROFILE_OPTION}" value="{slug}"{checked}> '
            f"<strong>{html.escape(profile.display_name)}</strong>"
            + (f' <span class="text-muted">{details}</span>' if details else "")
            + (
                f'<br><small class="labfleet-environment text-muted">{html.escape(contents)}'
                "</small>"
                if contents
                else ""
            )
            + "</label></div>"
        )
    return (
        '<fieldset class="labfleet-profiles"><legend>Server profile</legend>'
        + "".join(rows)
        + "</fieldset>"
    )


class ProfileChoiceMixin(HasTraits):
    """Spawner mixin: profile form, options parsing, enforcement, ``apply_profile`` hook.

    A HasTraits subclass, so its trait and ``@default`` handlers are set up when
    mixed into a Spawner (plain mixins' traits are not).
    """

    labfleet_profiles = List(
        Dict(), config=True, help="Profiles from labfleet.yaml (see spawn.policy.profiles_setting)."
    )

    # Provided by jupyterhub.spawner.Spawner.
    user: Any
    user_options: dict[str, Any]
    log: Any

    _parsed_profiles: list[Profile] | None = None
    chosen_profile: Profile | None = None

    # -- inputs ---------------------------------------------------------------

    @property
    def profiles(self) -> list[Profile]:
        if self._parsed_profiles is None:
            self._parsed_profiles = profiles_from_setting(self.labfleet_profiles)
        return self._parsed_profiles

    def requester(self) -> Requester:
        """The spawning user as policy sees them; groups are read fresh every time."""
        groups = [group.name for group in (getattr(self.user, "groups", None) or [])]
        return Requester.of(self.user.name, groups, bool(getattr(self.user, "admin", False)))

    # -- the form ---------------------------------------------------------------

    def gpus_on_this_machine(self) -> int | None:
        """GPUs servers can get here (None: unknown, e.g. on Kubernetes: hide nothing).

        Profiles asking for more are left off the form: they could never start.
        """
        ledger = getattr(self, "gpu_ledger", None)
        if ledger is None:
            return None
        try:
            return len(ledger().devices)
        except (OSError, ValueError):
            return None

    async def get_options_form(self) -> str:
        """The form, or "" (no form, spawn at once) when at most one profile is available."""
        who = self.requester()
        gpus = self.gpus_on_this_machine()
        choices = [
            p for p in allowed_profiles(self.profiles, who) if gpus is None or p.gpus <= gpus
        ]
        if len(choices) <= 1:
            return ""
        previous = (self.user_options or {}).get(PROFILE_OPTION)
        selected = next(
            (p.slug for p in choices if p.slug == previous), default_for(self.profiles, who).slug
        )
        if selected not in {p.slug for p in choices}:  # the default needs absent hardware
            selected = choices[0].slug
        environments = {
            p.environment: self.environment_contents(p.environment)
            for p in choices
            if p.environment
        }
        return render_profile_form(choices, selected, environments)

    def environment_contents(self, environment: str) -> str:
        """One line saying what ``environment`` holds, for the form ("": say nothing).

        Spawners that know where managed environments live (the local one) override it.
        """
        return ""

    @default("options_from_form")
    def _profile_options_from_form(self) -> Any:
        return self.profile_options_from_form

    def profile_options_from_form(self, form_data: Mapping[str, list[Any]]) -> dict[str, Any]:
        """Form fields → ``user_options`` (one ``profile`` value), checked at once."""
        options: dict[str, Any] = {}
        for key, values in form_data.items():
            if key in _IGNORED_FORM_FIELDS:
                continue
            if not isinstance(values, list) or len(values) != 1:
                raise web.HTTPError(403, f"option {str(key)[:40]!r} must have one value")
            options[key] = values[0]
        self.check_user_options(options)
        return options

    # -- enforcement ----------------------------------------------------------

    def check_user_options(self, options: Mapping[str, Any] | None) -> Profile:
        """The profile for ``options``, or HTTP 403 (400 for malformed input) with the reason."""
        try:
            return resolve_user_options(self.profiles, self.requester(), options)
        except PolicyError as exc:
            self.log.warning("Refused server options for %s: %s", self.user.name, exc.reason)
            self._forget_refused_options()
            raise web.HTTPError(exc.status, exc.reason) from None

    def _forget_refused_options(self) -> None:
        """Drop refused options JupyterHub already saved.

        ``User.spawn`` stores the requested options before they are checked and
        reuses them for the next start that sends none; without this, one refused
        request would make every later plain start fail with the same 403.
        """
        self.user_options = {}
        orm = getattr(self, "orm_spawner", None)
        if orm is not None and getattr(orm, "user_options", None):
            orm.user_options = {}
            db = getattr(self, "db", None)
            if db is not None:
                db.commit()

    @default("apply_user_options")
    def _profile_apply_user_options(self) -> Any:
        return ProfileChoiceMixin._enforce_user_options

    @staticmethod
    def _enforce_user_options(spawner: Any, user_options: dict[str, Any]) -> None:
        spawner.chosen_profile = spawner.check_user_options(user_options)

    def run_pre_spawn_hook(self) -> Any:
        # Checked again here, in case config replaced ``apply_user_options``.
        profile = self.check_user_options(self.user_options)
        self.chosen_profile = profile
        self._record_profile(profile)
        self.apply_profile(profile)
        return super().run_pre_spawn_hook()  # type: ignore[misc]

    def _record_profile(self, profile: Profile) -> None:
        """Name the resolved profile in ``user_options`` (memory and database).

        JupyterHub's admin page shows ``user_options.profile`` in its "Profile"
        column; a start without a form or options left it empty. Saved in the
        database too, so the column survives a hub restart.
        """
        if (self.user_options or {}).get(PROFILE_OPTION) == profile.slug:
            return
        self.user_options = {**(self.user_options or {}), PROFILE_OPTION: profile.slug}
        orm = getattr(self, "orm_spawner", None)
        db = getattr(self, "db", None)
        if orm is not None and db is not None:
            orm.user_options = dict(self.user_options)
            db.commit()

    def apply_profile(self, profile: Profile) -> None:
        """Set limits, image or environment from ``profile``; concrete spawners override it."""
