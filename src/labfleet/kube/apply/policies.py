"""Per-object apply and destroy policies carried as annotations.

The builders mark objects that must not simply be re-applied:

* ``labfleet.io/apply-policy: create-only`` (the hub Secret with its
  generated cookie secret, proxy token and crypt key): created when missing;
  when it exists its values are kept, only keys it lacks are added, so a
  re-apply never logs everyone out or makes encrypted auth state unreadable.
* ``labfleet.io/destroy-policy: keep-unless-delete-user-data`` (namespaces
  that hold users' volumes): ``destroy`` keeps them unless asked otherwise.

PersistentVolumeClaims are data: prune never deletes them and destroy keeps
them unless ``delete_user_data``.
"""

from __future__ import annotations

import copy
from typing import Any

from labfleet.kube.apply.refs import Manifest

APPLY_POLICY = "labfleet.io/apply-policy"
APPLY_CREATE_ONLY = "create-only"
DESTROY_POLICY = "labfleet.io/destroy-policy"
DESTROY_KEEP_USER_DATA = "keep-unless-delete-user-data"
#: Kinds whose deletion loses users' data.
DATA_KINDS = frozenset({"PersistentVolumeClaim", "PersistentVolume"})


def annotation(obj: Manifest | None, key: str) -> str | None:
    if not obj:
        return None
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(key)
    return str(value) if value is not None else None


def is_create_only(manifest: Manifest) -> bool:
    return annotation(manifest, APPLY_POLICY) == APPLY_CREATE_ONLY


def keeps_user_data(obj: Manifest | None, kind: str) -> bool:
    """True when deleting this object would delete users' data."""
    return kind in DATA_KINDS or annotation(obj, DESTROY_POLICY) == DESTROY_KEEP_USER_DATA


def create_only_update(desired: Manifest, live: dict[str, Any] | None) -> Manifest | None:
    """What to apply for a create-only object, or None when nothing may change.

    Missing: the rendered object as it is. Existing Secret: the live values
    win; only keys the live Secret lacks are added. Any other existing
    create-only object is left alone.
    """
    if live is None:
        return desired
    if desired.get("kind") != "Secret":
        return None
    rendered = dict(desired.get("data") or {})
    existing = dict(live.get("data") or {})
    missing = {key: value for key, value in rendered.items() if key not in existing}
    if not missing:
        return None
    merged = copy.deepcopy(desired)
    merged["data"] = {**rendered, **existing}
    merged.pop("stringData", None)
    return merged
