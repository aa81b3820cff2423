"""aether-conformance: a specification and conformance suite for aether-style event stores."""

from importlib import metadata as _metadata

from .errors import VersionConflictError
from .model import ActorSnapshot, Event, Timestamp, json_equal
from .protocols import AsyncEventStore, AsyncSnapshotStore, EventStore, SnapshotStore
from .requirements import REQUIREMENTS, Level, Requirement

try:
    __version__ = _metadata.version("aether-conformance")
except _metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

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
