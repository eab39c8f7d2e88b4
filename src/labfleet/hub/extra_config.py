"""Validate ``hub.extra_config`` (raw traitlets) as far as traitlets allows.

Unknown classes and traits are reported with a close match; values are run
through the trait's own validator when it can work without an instance.
"""

from __future__ import annotations

import difflib
from functools import cache
from importlib import import_module
from typing import Any

from traitlets import TraitError

#: modules whose configurable classes users may reasonably set
_MODULES = (
    ("jupyterhub.app", "JupyterHub"),
    ("jupyterhub.spawner", "Spawner"),
    ("jupyterhub.spawner", "LocalProcessSpawner"),
    ("jupyterhub.auth", "Authenticator"),
    ("jupyterhub.auth", "DummyAuthenticator"),
    ("jupyterhub.proxy", "ConfigurableHTTPProxy"),
    ("jupyterhub.crypto", "CryptKeeper"),
    ("labfleet.spawn.local", "LocalSpawner"),
    ("kubespawner", "KubeSpawner"),
    ("oauthenticator.oauth2", "OAuthenticator"),
    ("oauthenticator.github", "GitHubOAuthenticator"),
    ("oauthenticator.google", "GoogleOAuthenticator"),
    ("oauthenticator.generic", "GenericOAuthenticator"),
)


@cache
def known_classes() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for module_name, cls_name in _MODULES:
        try:
            cls = getattr(import_module(module_name), cls_name)
        except (ImportError, AttributeError):
            continue
        for klass in cls.__mro__:
            if hasattr(klass, "class_traits") and klass.__name__ not in found:
                found[klass.__name__] = klass
    return found


def _check_value(trait: Any, value: Any) -> str | None:
    try:
        trait.validate(None, value)
    except TraitError as exc:
        return str(exc).split("\n")[0]
    except Exception:
        return None
    return None


def check_extra_config(extra: dict[str, dict[str, Any]]) -> list[str]:
    """Human-readable problems; empty when everything is plausible."""
    problems: list[str] = []
    classes = known_classes()
    for cls_name, traits in extra.items():
        cls = classes.get(cls_name)
        if cls is None:
            close = difflib.get_close_matches(cls_name, list(classes), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(f"hub.extra_config.{cls_name}: unknown class{hint}")
            continue
        configurable = cls.class_traits(config=True)
        for name, value in traits.items():
            trait = configurable.get(name)
            where = f"hub.extra_config.{cls_name}.{name}"
            if trait is None:
                close = difflib.get_close_matches(name, list(configurable), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                problems.append(f"{where}: {cls_name} has no such setting{hint}")
                continue
            error = _check_value(trait, value)
            if error:
                problems.append(f"{where}: {error}")
    return problems


class ExtraConfigConflict(ValueError):
    """``hub.extra_config`` would silently drop something labfleet set; the message says what."""


#: List traits whose entries are named; extra entries are appended (a name clash is refused).
_NAMED_LISTS = {("JupyterHub", "services"), ("JupyterHub", "load_roles")}
#: Spawner classes labfleet configures; ``Spawner.<dict trait>`` reaches all of them.
_SPAWNER_CLASSES = ("Spawner", "LocalSpawner", "KubeSpawner", "LabfleetKubeSpawner")


def _names(entries: list[Any]) -> set[str]:
    return {e["name"] for e in entries if isinstance(e, dict) and isinstance(e.get("name"), str)}


def _merge_named_list(ours: list[Any], extra: list[Any], where: str) -> list[Any]:
    clash = sorted(_names(ours) & _names(extra))
    if clash:
        raise ExtraConfigConflict(
            f"{where}: {', '.join(clash)} is set by labfleet; give your entry another name"
        )
    return [*ours, *extra]


def _merge_spawner_dict(settings: dict[str, dict[str, Any]], name: str, value: Any) -> None:
    """``Spawner.environment: {...}`` adds to every spawner class's value and every profile's.

    Traitlets gives the most specific class's value to the spawner, and labfleet's
    Kubernetes profiles set ``environment`` per profile, so a plain ``Spawner`` value would
    otherwise have no effect on Kubernetes.
    """
    for cls in _SPAWNER_CLASSES:
        traits = settings.get(cls)
        if traits is None:
            continue
        if isinstance(traits.get(name), dict):
            traits[name] = {**traits[name], **value}
        overrides = traits.get("labfleet_profile_overrides")
        if isinstance(overrides, dict):
            for override in overrides.values():
                if isinstance(override.get(name), dict):
                    override[name] = {**override[name], **value}
    settings.setdefault("Spawner", {})
    if not isinstance(settings["Spawner"].get(name), dict):
        settings["Spawner"][name] = dict(value)


def merge_extra_config(
    settings: dict[str, dict[str, Any]], extra: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Apply ``hub.extra_config`` on top of labfleet's settings, never dropping ours silently.

    * a dict trait labfleet set is updated key by key (yours win per key);
    * ``JupyterHub.services`` / ``load_roles`` entries are appended; reusing one of
      labfleet's names (the culler, the supervisor, ...) raises :class:`ExtraConfigConflict`;
    * ``Spawner.<dict trait>`` reaches the concrete spawner classes and every profile;
    * anything else (scalars, other lists) replaces ours, as documented.
    """
    for cls, traits in extra.items():
        target = settings.setdefault(cls, {})
        for name, value in traits.items():
            where = f"hub.extra_config.{cls}.{name}"
            ours = target.get(name)
            if (cls, name) in _NAMED_LISTS and isinstance(value, list):
                target[name] = _merge_named_list(list(ours or []), value, where)
            elif cls == "Spawner" and isinstance(value, dict):
                _merge_spawner_dict(settings, name, value)
            elif isinstance(ours, dict) and isinstance(value, dict):
                target[name] = {**ours, **value}
            else:
                target[name] = value
    return settings
