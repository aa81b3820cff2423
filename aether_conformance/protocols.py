"""The store interfaces a conformance run drives, as ``typing.Protocol``s.

A store handle is sync (:class:`EventStore`) or async (:class:`AsyncEventStore`);
the driver also copes with a mixture, and with plain methods that return awaitables.  Snapshot support is detected structurally: a
handle that also has ``save_snapshot`` and ``get_latest_snapshot`` is a
:class:`SnapshotStore` (or :class:`AsyncSnapshotStore`).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .model import ActorSnapshot, Event

__all__ = ["EventStore", "SnapshotStore", "AsyncEventStore", "AsyncSnapshotStore"]


@runtime_checkable
class EventStore(Protocol):
    def save_event(self, event: Event) -> None:
        """Append ``event``; raise ``VersionConflictError`` if its version is not above the latest."""

    def get_events(self, actor_id: str, from_version: int) -> list[Event]:
        """Events of ``actor_id`` with version >= ``from_version``, ascending; ``[]`` when none."""

    def get_latest_version(self, actor_id: str) -> int:
        """The highest saved version of ``actor_id``, or 0 when it has none."""


@runtime_checkable
class SnapshotStore(EventStore, Protocol):
    def save_snapshot(self, snapshot: ActorSnapshot) -> None:
        """Store ``snapshot``."""

    def get_latest_snapshot(self, actor_id: str) -> ActorSnapshot | None:
        """The snapshot with the highest version, or ``None`` when there is none."""


@runtime_checkable
class AsyncEventStore(Protocol):
    async def save_event(self, event: Event) -> None: ...

    async def get_events(self, actor_id: str, from_version: int) -> list[Event]: ...

    async def get_latest_version(self, actor_id: str) -> int: ...


@runtime_checkable
class AsyncSnapshotStore(AsyncEventStore, Protocol):
    async def save_snapshot(self, snapshot: ActorSnapshot) -> None: ...

    async def get_latest_snapshot(self, actor_id: str) -> ActorSnapshot | None: ...
