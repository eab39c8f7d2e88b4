"""Pre-exec hooks travel to the fork-server's child as bytes (pure, in-process)."""

from __future__ import annotations

import functools
import os
import pickle
import threading
from pathlib import Path

import pytest

from labfleet.spawn.hookwire import HookNotPortable, decode_hooks, encode_hooks
from labfleet.spawn.limits.base import join_hook


def test_closure_hook_travels_by_value(tmp_path: Path) -> None:
    # the real "join this cgroup" hook is a closure: it must arrive and write our pid
    target = tmp_path / "cgroup.procs"
    target.write_text("")
    [hook] = decode_hooks(encode_hooks([join_hook([target])]))
    hook()
    assert target.read_text() == str(os.getpid())


def test_picklable_hooks_use_plain_pickle(tmp_path: Path) -> None:
    target = tmp_path / "written"
    hook = functools.partial(Path.write_text, target, "partial ran")
    data = encode_hooks([hook])
    [decoded] = decode_hooks(data)
    decoded()
    assert target.read_text() == "partial ran"


def test_unportable_hooks_are_refused() -> None:
    lock = threading.Lock()

    def holds_a_lock() -> None:
        with lock:
            pass

    with pytest.raises(HookNotPortable, match="closure is not picklable"):
        encode_hooks([holds_a_lock])

    class Callable:
        lock = threading.Lock()

        def __call__(self) -> None: ...

    with pytest.raises(HookNotPortable, match="neither picklable"):
        encode_hooks([Callable()])


def test_hooks_from_main_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def hook() -> None: ...

    monkeypatch.setattr(hook, "__module__", "__main__")
    with pytest.raises(HookNotPortable, match="__main__"):
        encode_hooks([hook])


def test_other_interpreters_bytes_are_refused() -> None:
    with pytest.raises(HookNotPortable, match="this interpreter"):
        decode_hooks(pickle.dumps(("cpython-27", [])))


def test_no_hooks_round_trip() -> None:
    assert decode_hooks(encode_hooks([])) == []
