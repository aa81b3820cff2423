"""A plain, correct store that each zoo specimen breaks in exactly one place.

Each specimen overrides one hook; everything else stays conformant, so the
suite must name the one requirement the specimen breaks.
"""

from __future__ import annotations

import copy
import threading
import uuid
from datetime import datetime, timezone

from aether_conformance import ActorSnapshot, Event, VersionConflictError


class ShareState:
    """The data all handles of one factory share (like one database)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: dict[str, list[Event]] = {}
        self.snapshots: dict[str, list[ActorSnapshot]] = {}


class CorrectStore:
    def __init__(self, shared: ShareState) -> None:
        self.shared = shared

    # -- hooks a specimen overrides --------------------------------------------------
    def latest(self, actor_id: str) -> int:
        stream = self.shared.events.get(actor_id)
        return stream[-1].version if stream else 0

    def conflict(self, event: Event, latest: int) -> Exception:
        return VersionConflictError(actor_id=event.actor_id, attempted_version=event.version, current_version=latest)

    def is_conflict(self, event: Event, latest: int) -> bool:
        return event.version <= latest

    def append(self, event: Event) -> None:
        self.shared.events.setdefault(event.actor_id, []).append(copy.deepcopy(event))

    def select(self, actor_id: str, from_version: int) -> list[Event]:
        return [copy.deepcopy(e) for e in self.shared.events.get(actor_id, []) if e.version >= from_version]

    def check_and_append(self, event: Event) -> None:
        with self.shared.lock:
            latest = self.latest(event.actor_id)
            if self.is_conflict(event, latest):
                raise self.conflict(event, latest)
            self.append(event)

    # -- the store interface -------------------------------------------------------
    def save_event(self, event: Event) -> None:
        self.check_and_append(event)

    def get_events(self, actor_id: str, from_version: int) -> list[Event]:
        with self.shared.lock:
            return self.select(actor_id, from_version)

    def get_latest_version(self, actor_id: str) -> int:
        with self.shared.lock:
            return self.latest(actor_id)

    def save_snapshot(self, snapshot: ActorSnapshot) -> None:
        with self.shared.lock:
            self.shared.snapshots.setdefault(snapshot.actor_id, []).append(copy.deepcopy(snapshot))

    def get_latest_snapshot(self, actor_id: str) -> ActorSnapshot | None:
        with self.shared.lock:
            snapshots = self.shared.snapshots.get(actor_id)
            return copy.deepcopy(max(snapshots, key=lambda s: s.version)) if snapshots else None


def factory(store_class: type[CorrectStore], state_class: type[ShareState] = ShareState):
    """A zero-argument factory whose handles share one ShareState (or a subclass with more shared data)."""
    shared = state_class()

    def make() -> CorrectStore:
        return store_class(shared)

    make.__name__ = f"make_{store_class.__name__}"
    return make


class EventsOnly:
    """A handle with only the three event methods (a store without snapshots)."""

    def __init__(self, inner: CorrectStore) -> None:
        self._inner = inner

    def save_event(self, event):
        return self._inner.save_event(event)

    def get_events(self, actor_id, from_version):
        return self._inner.get_events(actor_id, from_version)

    def get_latest_version(self, actor_id):
        return self._inner.get_latest_version(actor_id)


def events_only(store_class, state_class=ShareState):
    shared = state_class()

    def make() -> EventsOnly:
        return EventsOnly(store_class(shared))

    return make


def walk(value, leaf=lambda v: v, key=lambda k: k):
    """``value`` rebuilt with every scalar through ``leaf`` and every object key through ``key``."""
    if isinstance(value, dict):
        return {key(k): walk(v, leaf, key) for k, v in value.items()}
    if isinstance(value, list):
        return [walk(v, leaf, key) for v in value]
    return leaf(value)


# Events and snapshots for the specimens' trigger functions.
T0 = datetime(2024, 3, 1, 12, tzinfo=timezone.utc)


def ev(actor: str, version: int, **fields) -> Event:
    values = dict(id=f"e-{uuid.uuid4().hex}", event_type="T", actor_id=actor, version=version,
                  data={"v": version}, timestamp=T0)
    values.update(fields)
    return Event(**values)


def snap(actor: str, version: int, **fields) -> ActorSnapshot:
    values = dict(actor_id=actor, version=version, state={"v": version}, timestamp=T0)
    values.update(fields)
    return ActorSnapshot(**values)
