"""aether-conformance: a specification and conformance suite for aether-style event stores."""

from .errors import VersionConflictError
from .model import ActorSnapshot, Event, Timestamp, json_equal
from .protocols import AsyncEventStore, AsyncSnapshotStore, EventStore, SnapshotStore
from .requirements import REQUIREMENTS, Level, Requirement

__all__ = [
    "ActorSnapshot",
    "AsyncEventStore",
    "AsyncSnapshotStore",
    "Event",
    "EventStore",
    "Level",
    "REQUIREMENTS",
    "Requirement",
    "SnapshotStore",
    "Timestamp",
    "VersionConflictError",
    "json_equal",
]
