"""One collision-free, DNS-safe slug for every name derived from a username.

System accounts, home directories, pod names, PVC names and namespaces are
all derived from :func:`user_slug` / :func:`server_slug`, so a hostile
username can never reach a system command or a Kubernetes name unescaped.

Rules that make the mapping collision-free:

* A name that is already a "plain" slug (``[a-z][a-z0-9-]*``, no ``--``,
  no trailing ``-``, short enough) is kept as it is.
* Anything else becomes ``<sanitised prefix>---<hash>``: the hash is taken
  over the *original* name, and plain slugs never contain ``--``, so a
  hashed slug can never equal a plain one.
* Composite names join the parts with ``--`` (user ``a-b`` default server
  ``jupyter-a-b``; user ``a`` server ``b`` ``jupyter-a--b``), which cannot be
  confused because no plain part contains ``--`` and no part starts with
  ``-``.
"""

from __future__ import annotations

import hashlib
import re

#: Longest slug; leaves room for prefixes inside a 63-char DNS label and
#: fits a Linux account name (32 chars) with the ``lf-`` prefix.
MAX_SLUG = 24
_PLAIN = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
_HASH_LEN = 8


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_LEN]


def is_plain_slug(value: str, max_length: int = MAX_SLUG) -> bool:
    """True when ``value`` is already safe and needs no escaping."""
    return len(value) <= max_length and _PLAIN.fullmatch(value) is not None


def safe_slug(name: str, max_length: int = MAX_SLUG) -> str:
    """Map any string to a unique DNS-1123 label of at most ``max_length``."""
    if is_plain_slug(name, max_length):
        return name
    sanitised = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if not sanitised or not sanitised[0].isalpha():
        sanitised = "x" + ("-" + sanitised if sanitised else "")
    keep = max_length - _HASH_LEN - 3
    prefix = sanitised[:keep].rstrip("-")
    return f"{prefix}---{_digest(name)}"


def user_slug(username: str) -> str:
    """Slug of a username (used for accounts, homes, pods, volumes)."""
    return safe_slug(username)


def server_slug(username: str, server_name: str = "") -> str:
    """Slug of one server: ``<user>`` or ``<user>--<server>``."""
    base = user_slug(username)
    if not server_name:
        return base
    return f"{base}--{safe_slug(server_name)}"


def system_account(username: str) -> str:
    """Local account name: prefixed so ``root`` or ``daemon`` can never be hit."""
    return f"lf-{user_slug(username)}"
