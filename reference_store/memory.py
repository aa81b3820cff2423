"""The in-memory reference store: the Go seed's InMemoryEventStore, in Python.

One lock guards check-and-append, so concurrent writers get exactly one
winner per version.  Each actor's events are kept in ascending version order,
so ``get_events`` bisects to its start (O(log n + k)) instead of scanning.
Callers cannot mutate history: event data and snapshot state are copied on
the way in and on the way out (events themselves are frozen).  Data is checked
again when saved, as the model checked it when the event was built (a caller
may have changed it since): the store never acknowledges data it could not
hand back, such as data nested deeper than the kit's MAX_NESTING_DEPTH.
"""

from __future__ import annotations

import pickle
import threading
from bisect import bisect_left
from dataclasses import replace
from operator import attrgetter
from typing import Any

from aether_conformance import ActorSnapshot, Event, VersionConflictError
from aether_conformance.json_values import check_json_value, copy_json

__all__ = ["InMemoryEventStore", "shared_store"]

_new = object.__new__
_version = attrgetter("version")

# Immutable JSON scalars: a plain dict holding only these is detached by a shallow copy.
_SCALARS = frozenset({str, int, float, bool, type(None)})


class _DeepCopied:
    """Data that pickle cannot take, kept as a deep copy and deep-copied again on every read.

    The copies walk dicts and lists without recursion (``copy_json``): pickle
    stops at about 500 levels, ``copy.deepcopy`` at about 330.
    """

    __slots__ = ("data",)

    def __init__(self, data: Any) -> None:
        self.data = data


def _pack(data: Any) -> bytes | _DeepCopied:
    """The store's private form of data that may hold containers.

    Pickled bytes are immutable, and unlike a tree of copied dicts and lists they
    give the garbage collector nothing to traverse; pickle's C code also copies
    faster than copy.deepcopy.
    """
    try:
        return pickle.dumps(data, pickle.HIGHEST_PROTOCOL)
    except Exception:  # whatever pickle refuses (locks, local classes, deep nesting, ...) is still copyable
        return _DeepCopied(copy_json(data))


def _unpack(packed: bytes | _DeepCopied) -> Any:
    return pickle.loads(packed) if type(packed) is bytes else copy_json(packed.data)


class _Stream:
    """One actor's events; created by its first save, so ``events`` is never empty.

    An Event is frozen, so the store keeps the caller's object; only its data dict
    is mutable, so beside each event ``datas`` holds the store's own copy of it:
    None for no data, a dict for flat data, else what _pack made of it.
    """

    __slots__ = ("events", "datas")

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.datas: list[dict[str, Any] | bytes | _DeepCopied | None] = []


class InMemoryEventStore:
    """A thread-safe event and snapshot store held in process memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: dict[str, _Stream] = {}
        # Per actor, the first snapshot saved with the highest version, as in the seed (strict ">").
        self._snapshots: dict[str, ActorSnapshot] = {}

    def save_event(self, event: Event) -> None:
        if not isinstance(event, Event):
            raise TypeError(f"save_event expects an Event, got {type(event).__name__}")
        data = event.data
        if data is not None:
            check_json_value("Event.data", data)
            if type(data) is dict and _SCALARS.issuperset(map(type, data.values())):
                data = data.copy()
            else:
                data = _pack(data)
        version = event.version
        with self._lock:
            stream = self._streams.get(event.actor_id)
            latest = 0 if stream is None else stream.events[-1].version
            if version <= latest:
                raise VersionConflictError(
                    actor_id=event.actor_id, attempted_version=version, current_version=latest
                )
            if stream is None:
                stream = self._streams[event.actor_id] = _Stream()
            stream.events.append(event)
            stream.datas.append(data)

    def get_events(self, actor_id: str, from_version: int) -> list[Event]:
        with self._lock:
            stream = self._streams.get(actor_id)
            if stream is None:
                return []
            start = bisect_left(stream.events, from_version, key=_version)
            events, datas = stream.events[start:], stream.datas[start:]
        # Stored events and datas are never changed, so the copies can be made outside the lock.
        result = []
        for event, data in zip(events, datas):
            if data is None:
                result.append(event)  # frozen, with no data: nothing a caller could change
                continue
            # Bypasses __init__: the fields were validated when the caller built the event.
            detached = _new(type(event))
            fields = detached.__dict__
            fields.update(event.__dict__)
            fields["data"] = data.copy() if type(data) is dict else _unpack(data)
            result.append(detached)
        return result

    def get_latest_version(self, actor_id: str) -> int:
        with self._lock:
            stream = self._streams.get(actor_id)
            return 0 if stream is None else stream.events[-1].version

    def save_snapshot(self, snapshot: ActorSnapshot) -> None:
        if not isinstance(snapshot, ActorSnapshot):
            raise TypeError(f"save_snapshot expects an ActorSnapshot, got {type(snapshot).__name__}")
        check_json_value("ActorSnapshot.state", snapshot.state)
        stored = replace(snapshot, state=copy_json(snapshot.state))
        with self._lock:
            best = self._snapshots.get(snapshot.actor_id)
            if best is None or stored.version > best.version:
                self._snapshots[snapshot.actor_id] = stored

    def get_latest_snapshot(self, actor_id: str) -> ActorSnapshot | None:
        with self._lock:
            best = self._snapshots.get(actor_id)
        return None if best is None else replace(best, state=copy_json(best.state))


_SHARED = InMemoryEventStore()


def shared_store() -> InMemoryEventStore:
    """Zero-argument factory for the conformance suite: every handle is one shared store."""
    return _SHARED
