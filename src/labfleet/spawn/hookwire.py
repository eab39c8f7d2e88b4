"""Carry ``LaunchSpec.pre_exec`` hooks to the fork-server's child.

With plain exec the hooks run in a child forked from the hub. With the
fork-server they must run in a child forked from *another* process, so they
travel as bytes: by plain pickle when they are picklable (module-level
functions, ``functools.partial``, callable dataclasses), otherwise — the common
case of a closure such as a "join this cgroup" hook — by value: the function's
code (marshal), its module (imported on the other side for its globals) and
its pickled closure cells and defaults.

Only ever decode bytes received from the hub over the fork-server's private
socket (root-only directory, peer credentials checked): unpickling is code
execution by design, and the hub is trusted with that already.
"""

from __future__ import annotations

import importlib
import marshal
import pickle
import sys
import types
from collections.abc import Callable, Sequence
from typing import Any

Hook = Callable[[], None]

#: marshal's format is only stable within one interpreter version
WIRE_TAG = f"{sys.implementation.cache_tag}"


class HookNotPortable(Exception):
    """A hook that cannot be sent to another process: the launch must use exec."""


def _by_value(hook: types.FunctionType) -> tuple[str, Any]:
    if hook.__kwdefaults__:
        raise HookNotPortable(f"{hook.__qualname__}: keyword-only defaults are not supported")
    cells = tuple(cell.cell_contents for cell in hook.__closure__ or ())
    try:
        payload = pickle.dumps((cells, hook.__defaults__))
    except Exception as exc:
        raise HookNotPortable(f"{hook.__qualname__}: closure is not picklable: {exc}") from exc
    code = marshal.dumps(hook.__code__)
    return "function", (hook.__module__, hook.__qualname__, code, payload)


def encode_hooks(hooks: Sequence[Hook]) -> bytes:
    """Hooks → bytes for :func:`decode_hooks` in a process of the same interpreter."""
    items: list[tuple[str, Any]] = []
    for hook in hooks:
        if getattr(hook, "__module__", None) == "__main__":
            raise HookNotPortable(f"{hook!r} lives in __main__, which the other side cannot import")
        try:
            items.append(("pickle", pickle.dumps(hook)))
            continue
        except Exception:  # noqa: S110 - closures are expected here; try by value
            pass
        if not isinstance(hook, types.FunctionType):
            raise HookNotPortable(f"{hook!r} is neither picklable nor a plain function")
        items.append(_by_value(hook))
    return pickle.dumps((WIRE_TAG, items))


def decode_hooks(data: bytes) -> list[Hook]:
    """Bytes from :func:`encode_hooks` → callables (imports the hooks' modules)."""
    tag, items = pickle.loads(data)  # noqa: S301 - from the hub over a private socket
    if tag != WIRE_TAG:
        raise HookNotPortable(f"hooks encoded by {tag}, this interpreter is {WIRE_TAG}")
    hooks: list[Hook] = []
    for kind, value in items:
        if kind == "pickle":
            hooks.append(pickle.loads(value))  # noqa: S301 - see above
            continue
        module_name, qualname, code, payload = value
        cells, defaults = pickle.loads(payload)  # noqa: S301 - see above
        module = importlib.import_module(module_name)
        function = types.FunctionType(
            marshal.loads(code),  # noqa: S302 - see above
            module.__dict__,
            qualname.rsplit(".", 1)[-1],
            defaults,
            tuple(types.CellType(cell) for cell in cells),
        )
        hooks.append(function)
    return hooks
