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
