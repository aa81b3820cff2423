"""The records an event store keeps, and their JSON form (Go's ``encoding/json``).

The JSON Schemas in ``schemas/`` are the source of truth for the wire form;
``from_dict`` validates against them, so an error always names the field and
the rule that failed.  What a schema cannot say, the model checks when a
record is built (and ``from_dict`` before the schema): no NaN or infinity, no
integer beyond float64 range, no lone surrogate in any string, no data nested
deeper than :data:`~aether_conformance.limits.MAX_NESTING_DEPTH` levels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from .json_values import check_json_value, check_text, copy_json, json_equal
from .timestamps import Timestamp, format_go_time, parse_go_time

__all__ = ["Event", "ActorSnapshot", "Timestamp", "json_equal", "INT64_MIN", "INT64_MAX"]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def _check_str(owner: str, name: str, value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{owner}.{name}: must be a str, got {type(value).__name__}")
    check_text(f"{owner}.{name}", value)


def _check_version(owner: str, value: object) -> None:
    # bool is an int subclass; True as a version is a bug, not version 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}.version: must be an int, got {type(value).__name__}")
    if not INT64_MIN <= value <= INT64_MAX:
        # Beyond 4,300 digits str() of an int raises a ValueError of its own: show its size instead.
        shown = value if value.bit_length() <= 256 else f"an integer of {value.bit_length()} bits"
        raise ValueError(f"{owner}.version: must fit in a Go int64, got {shown}")


def _check_object(owner: str, name: str, value: object) -> None:
    if value is not None and not isinstance(value, dict):
        raise TypeError(f"{owner}.{name}: must be a dict or None (Go map, nil allowed), got {type(value).__name__}")
    check_json_value(f"{owner}.{name}", value)


def _check_wire(record: str, wire: object) -> None:
    """Refuse what Go's JSON cannot carry anywhere in a record's wire form, naming the field.

    Before the schema: its messages quote the offending value, and quoting an
    integer beyond 4,300 digits raises a bare ValueError.
    """
    if isinstance(wire, dict):
        for name, value in wire.items():
            check_json_value(f"{record}.{name}" if isinstance(name, str) else record, value)


def _parse_timestamp(where: str, text: str) -> Timestamp:
    # The schema has checked the text, but its pattern cannot refuse a trailing
    # newline (Python's "$" matches before one); the parser does, and the error
    # must still name the field.
    try:
        return parse_go_time(text)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


def _check_timestamp(owner: str, value: object) -> None:
    if not isinstance(value, datetime):
        raise TypeError(f"{owner}.timestamp: must be a datetime, got {type(value).__name__}")
    # Any offset is accepted, seconds included: Go's time.Time holds the local mean time of the tz
    # database (Amsterdam before 1937 is +00:19:32), and a store that reads timestamps back in a
    # named zone returns them.  format_go_time writes such an instant in UTC.
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{owner}.timestamp: must be timezone-aware (Go's time.Time always has a location)")


@dataclass(frozen=True)
class Event:
    """One event in an actor's stream (Go: ``aether.Event``).

    Any int64 version may be constructed, 0 and negatives included, so that a
    conformance suite can offer them to a store and watch it refuse.
    """

    id: str
    event_type: str
    actor_id: str
    version: int
    data: dict[str, Any] | None
    timestamp: datetime
    command_id: str = ""

    def __post_init__(self) -> None:
        for name in ("id", "event_type", "actor_id", "command_id"):
            _check_str("Event", name, getattr(self, name))
        _check_version("Event", self.version)
        _check_object("Event", "data", self.data)
        _check_timestamp("Event", self.timestamp)

    def __deepcopy__(self, memo: dict[int, Any]) -> Event:
        # copy.deepcopy takes two frames a level and would stop short of MAX_NESTING_DEPTH.
        return replace(self, data=copy_json(self.data, memo))

    def to_dict(self) -> dict[str, Any]:
        """The Go JSON shape: ``commandId`` is omitted when empty (``omitempty``)."""
        result: dict[str, Any] = {
            "id": self.id,
            "eventType": self.event_type,
            "actorId": self.actor_id,
        }
        if self.command_id:
            result["commandId"] = self.command_id
        result["version"] = self.version
        result["data"] = self.data
        result["timestamp"] = format_go_time(self.timestamp)
        return result

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, check_schema: bool = True) -> Event:
        """Build the event from its Go JSON form, validated against ``schemas/event.schema.json``.

        ``check_schema=False`` skips the schema (the constructor still checks types): for a
        store reading back what ``to_dict`` wrote, or for an event offered with a version
        below 1, which the stored-event schema refuses.
        """
        if check_schema:
            from .schemas import validate

            _check_wire("event", data)
            validate("event", data)
        return cls(
            id=data["id"],
            event_type=data["eventType"],
            actor_id=data["actorId"],
            command_id=data.get("commandId", ""),
            version=data["version"],
            data=data["data"],
            timestamp=_parse_timestamp("event.timestamp", data["timestamp"]),
        )


@dataclass(frozen=True)
class ActorSnapshot:
    """An actor's state as of ``version`` (Go: ``aether.ActorSnapshot``)."""

    actor_id: str
    version: int
    state: dict[str, Any] | None
    timestamp: datetime

    def __post_init__(self) -> None:
        _check_str("ActorSnapshot", "actor_id", self.actor_id)
        _check_version("ActorSnapshot", self.version)
        _check_object("ActorSnapshot", "state", self.state)
        _check_timestamp("ActorSnapshot", self.timestamp)

    def __deepcopy__(self, memo: dict[int, Any]) -> ActorSnapshot:
        return replace(self, state=copy_json(self.state, memo))

    def to_dict(self) -> dict[str, Any]:
        return {
            "actorId": self.actor_id,
            "version": self.version,
            "state": self.state,
            "timestamp": format_go_time(self.timestamp),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ActorSnapshot:
        from .schemas import validate

        _check_wire("actor-snapshot", data)
        validate("actor-snapshot", data)
        return cls(
            actor_id=data["actorId"],
            version=data["version"],
            state=data["state"],
            timestamp=_parse_timestamp("actor-snapshot.timestamp", data["timestamp"]),
        )
