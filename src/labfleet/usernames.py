"""The one username normalisation, shared by the account store, every login and the allow-lists.

A name typed at the login form, a name stored by ``labfleet users add``, a
name in ``allowed_users`` and a name derived from an e-mail address must all
compare equal when they mean the same person (``Alice``, ``ALICE``,
``alice ``), and a hostile name (``../x``, ``-rf``, ``a\\nb``, a 10 MB
string, a Cyrillic look-alike) must be refused before any system account,
path or Kubernetes name is derived from it. So the rules live here, once.

Two steps, because JupyterHub needs them apart: :func:`canonical_username`
never fails (JupyterHub calls ``normalize_username`` where an exception would
be a 500), and :func:`username_problem` says why a canonical name is refused
(JupyterHub's ``validate_username``). :func:`normalize_username` does both.
"""

from __future__ import annotations

import unicodedata

#: Longest accepted username (after normalisation).
MAX_USERNAME = 128
#: Inputs longer than this are not even normalised (a 10 MB name costs nothing).
_MAX_RAW = 4 * MAX_USERNAME
#: Punctuation allowed besides letters and digits (e-mail addresses, dotted names).
_ALLOWED_PUNCTUATION = frozenset("._@+-")
#: Scripts whose letters look alike; mixing them in one name is refused.
_CONFUSABLE_SCRIPTS = frozenset({"LATIN", "CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE"})


class InvalidUsername(ValueError):
    """A username that is refused; the message says why (safe to show the user)."""


def canonical_username(raw: str) -> str:
    """NFKC-fold, strip and case-fold ``raw``; never raises.

    Over-long input is returned unchanged so that :func:`username_problem`
    refuses it without the cost of normalising megabytes.
    """
    if len(raw) > _MAX_RAW:
        return raw
    folded = unicodedata.normalize("NFKC", raw).strip().casefold()
    return unicodedata.normalize("NFKC", folded)


def _script(char: str) -> str | None:
    name = unicodedata.name(char, "")
    first = name.split(" ", 1)[0]
    return first if first in _CONFUSABLE_SCRIPTS else None


def username_problem(name: str) -> str | None:
    """Why the (canonical) ``name`` is refused, or None when it is acceptable."""
    if not name:
        return "the username is empty"
    if len(name) > MAX_USERNAME:
        return f"the username is longer than {MAX_USERNAME} characters"
    if name != canonical_username(name):
        return "the username is not in normal form"
    if name[0] in "-.+@":
        return "the username must start with a letter or digit"
    scripts: set[str] = set()
    for char in name:
        category = unicodedata.category(char)
        if category[0] in "LN":
            script = _script(char)
            if script is not None:
                scripts.add(script)
        elif char not in _ALLOWED_PUNCTUATION:
            if category[0] in "CZ":
                return "the username contains a control, format or space character"
            return f"the username contains the character {char!r}"
    if len(scripts) > 1:
        return "the username mixes look-alike alphabets (" + ", ".join(sorted(scripts)) + ")"
    if ".." in name:
        return "the username contains '..'"
    return None


def normalize_username(raw: str) -> str:
    """Canonical form of ``raw``; raises :class:`InvalidUsername` if it is refused."""
    if not isinstance(raw, str):
        raise InvalidUsername("the username is not text")
    name = canonical_username(raw)
    problem = username_problem(name)
    if problem is not None:
        raise InvalidUsername(problem)
    return name


def normalize_usernames(raws: list[str]) -> list[str]:
    """Normalise a configured list, keeping order and dropping duplicates."""
    seen: dict[str, None] = {}
    for raw in raws:
        seen.setdefault(normalize_username(raw), None)
    return list(seen)
