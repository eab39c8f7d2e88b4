"""Typed results and progress events of the apply engine (no printing here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from labfleet.kube.apply.diff import FieldChange
from labfleet.kube.apply.refs import ObjectRef, Target


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    PRUNE = "prune"
    KEEP = "keep"
    CONFLICT = "conflict"


@dataclass(frozen=True)
class Change:
    """What plan found (or apply did) for one object."""

    ref: ObjectRef
    action: Action
    fields: tuple[FieldChange, ...] = ()
    reason: str = ""


@dataclass(frozen=True)
class Plan:
    target: Target
    changes: tuple[Change, ...]
    #: Problems worth reading before applying (e.g. a Secret the hub needs is missing).
    warnings: tuple[str, ...] = ()

    def of(self, action: Action) -> list[Change]:
        return [c for c in self.changes if c.action is action]

    @property
    def has_changes(self) -> bool:
        return any(c.action not in (Action.UNCHANGED, Action.KEEP) for c in self.changes)


@dataclass(frozen=True)
class RolloutState:
    """Progress of one workload: ``ready`` of ``desired`` replicas after ``elapsed`` s."""

    ref: ObjectRef
    ready: int
    desired: int
    elapsed: float
    done: bool
    message: str = ""


@dataclass(frozen=True)
class RolloutResult:
    states: tuple[RolloutState, ...]
    timed_out: bool

    @property
    def ready(self) -> bool:
        return not self.timed_out and all(s.done for s in self.states)


@dataclass(frozen=True)
class Endpoint:
    """How people reach the hub, as far as the cluster tells us."""

    url: str | None
    hint: str


@dataclass(frozen=True)
class ApplyResult:
    target: Target
    changes: tuple[Change, ...]
    pruned: tuple[ObjectRef, ...] = ()
    kept: tuple[Change, ...] = ()
    rollout: RolloutResult | None = None
    endpoint: Endpoint | None = None
    warnings: tuple[str, ...] = ()

    def of(self, action: Action) -> list[Change]:
        return [c for c in self.changes if c.action is action]

    @property
    def changed(self) -> bool:
        return bool(self.pruned) or any(
            c.action in (Action.CREATE, Action.UPDATE) for c in self.changes
        )


@dataclass(frozen=True)
class Kept:
    ref: ObjectRef
    reason: str


@dataclass(frozen=True)
class DestroyResult:
    target: Target
    deleted: tuple[ObjectRef, ...]
    kept: tuple[Kept, ...]


@dataclass(frozen=True)
class WorkloadStatus:
    ref: ObjectRef
    component: str
    ready: int
    desired: int
    message: str = ""


@dataclass(frozen=True)
class UserPod:
    name: str
    namespace: str
    user: str
    server: str
    phase: str
    ready: bool
    ip: str | None


@dataclass(frozen=True)
class FleetStatus:
    target: Target
    installed: bool
    workloads: tuple[WorkloadStatus, ...] = ()
    user_pods: tuple[UserPod, ...] = ()
    endpoint: Endpoint | None = None
    volumes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def healthy(self) -> bool:
        return self.installed and all(w.ready >= w.desired for w in self.workloads)


# -- progress events (the CLI prints them as they come) ------------------------


@dataclass(frozen=True)
class Applied:
    change: Change


@dataclass(frozen=True)
class Pruned:
    ref: ObjectRef


@dataclass(frozen=True)
class Deleted:
    ref: ObjectRef


@dataclass(frozen=True)
class Waiting:
    state: RolloutState


@dataclass(frozen=True)
class Notice:
    """Something to read now, not only in the final summary (e.g. a missing Secret)."""

    text: str


Event = Applied | Pruned | Deleted | Waiting | Notice
