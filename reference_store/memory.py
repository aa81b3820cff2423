"""The in-memory reference store: the Go seed's InMemoryEventStore, in Python.

One lock guards check-and-append, so concurrent writers get exactly one
winner per version.  Versions are kept in a sorted list beside the events,
so ``get_events`` bisects to its start (O(log n + k)) instead of scanning.
Stored and returned events are copies: callers cannot mutate history.
"""

from __future__ import annotations

import copy
import threading
from bisect import bisect_left, insort
from dataclasses import replace

from aether_conformance import ActorSnapshot, Event, VersionConflictError

__all__ = ["InMemoryEventStore", "shared_store"]


class _Stream:
    __slots__ = ("versions", "events", "snapshot")

    def __init__(self) -> None:
        self.versions: list[int] = []
        self.events: list[Event] = []
        # The first snapshot saved with the highest version, as in the seed (strict ">").
        self.snapshot: ActorSnapshot | None = None


def _detached(event: Event) -> Event:
    # Events are frozen; only their data dict can be shared with a caller.
    return event if event.data is None else replace(event, data=copy.deepcopy(event.data))


class InMemoryEventStore:
    """A thread-safe event and snapshot store held in process memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: dict[str, _Stream] = {}

    def save_event(self, event: Event) -> None:
        if not isinstance(event, Event):
            raise TypeError(f"save_event expects an Event, got {type(event).__name__}")
        stored = _detached(event)
        with self._lock:
            stream = self._streams.get(event.actor_id)
            latest = stream.versions[-1] if stream is not None and stream.versions else 0
            if event.version <= latest:
                raise VersionConflictError(
                    actor_id=event.actor_id, attempted_version=event.version, current_version=latest
                )
            if stream is None:
                stream = self._streams[event.actor_id] = _Stream()
            stream.versions.append(event.version)
            stream.events.append(stored)

    def get_events(self, actor_id: str, from_version: int) -> list[Event]:
        with self._lock:
            stream = self._streams.get(actor_id)
            if stream is None:
                return []
            selected = stream.events[bisect_left(stream.versions, from_version):]
        return [_detached(event) for event in selected]

    def get_latest_version(self, actor_id: str) -> int:
        with self._lock:
            stream = self._streams.get(actor_id)
            return stream.versions[-1] if stream is not None and stream.versions else 0

    def save_snapshot(self, snapshot: ActorSnapshot) -> None:
        if not isinstance(snapshot, ActorSnapshot):
            raise TypeError(f"save_snapshot expects an ActorSnapshot, got {type(snapshot).__name__}")
        stored = replace(snapshot, state=copy.deepcopy(snapshot.state))
        with self._lock:
            stream = self._streams.setdefault(snapshot.actor_id, _Stream())
            if stream.snapshot is None or stored.version > stream.snapshot.version:
                stream.snapshot = stored

    def get_latest_snapshot(self, actor_id: str) -> ActorSnapshot | None:
        with self._lock:
            stream = self._streams.get(actor_id)
            best = None if stream is None else stream.snapshot
        return None if best is None else replace(best, state=copy.deepcopy(best.state))


_SHARED = InMemoryEventStore()


def shared_store() -> InMemoryEventStore:
    """Zero-argument factory for the conformance suite: every handle is one shared store."""
    return _SHARED
