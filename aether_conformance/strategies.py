"""Hypothesis strategies for aether records: public API for store authors' own tests.

Every value these strategies generate is valid on the wire: ``to_dict()`` of a
generated event or snapshot validates against ``schemas/``, and survives a
trip through Go's ``encoding/json`` (no NaN or infinity, integers within
±2^53 because Go decodes JSON numbers in ``data`` as float64, no lone
surrogates, which Go cannot encode).

Example::

    from hypothesis import given, strategies as st
    from aether_conformance import strategies as st_aether

    @given(st_aether.events(version=st.integers(1, 10)))
    def test_my_codec_round_trips(event):
        assert decode(encode(event)) == event
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import strategies as st

from .model import INT64_MAX, ActorSnapshot, Event, Timestamp

__all__ = [
    "actor_ids",
    "texts",
    "json_values",
    "json_objects",
    "timestamps",
    "versions",
    "events",
    "snapshots",
]

JSON_SAFE_INT = 2**53 - 1


def texts(min_size: int = 0, max_size: int | None = None) -> st.SearchStrategy[str]:
    """Unicode text without lone surrogates (Go strings are UTF-8)."""
    return st.text(st.characters(exclude_categories=("Cs",)), min_size=min_size, max_size=max_size)


def actor_ids(min_size: int = 1, max_size: int = 256) -> st.SearchStrategy[str]:
    """Actor ids every store must accept (ES-ACTOR-002): 1 to 256 Unicode scalar values."""
    return texts(min_size=min_size, max_size=max_size)


def json_values(max_leaves: int = 20) -> st.SearchStrategy[object]:
    """Any JSON value that round-trips through Go's ``map[string]interface{}``."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-JSON_SAFE_INT, JSON_SAFE_INT)
        | st.floats(allow_nan=False, allow_infinity=False)
        | texts(max_size=40)
    )
    return st.recursive(
        scalars,
        lambda children: st.lists(children, max_size=5) | st.dictionaries(texts(max_size=10), children, max_size=5),
        max_leaves=max_leaves,
    )


def json_objects(max_leaves: int = 20) -> st.SearchStrategy[dict[str, object] | None]:
    """Event data / snapshot state: a JSON object, or None (Go's nil map, ``null``)."""
    return st.none() | st.dictionaries(texts(max_size=10), json_values(max_leaves), max_size=6)


_OFFSETS = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda minutes: timezone(timedelta(minutes=minutes)))


def timestamps() -> st.SearchStrategy[Timestamp]:
    """Aware timestamps with nanoseconds and any whole-minute UTC offset, as Go writes them."""
    return st.builds(
        Timestamp.from_datetime,
        # A day's margin keeps the instant within years 1-9999 in UTC and in any offset.
        st.datetimes(
            min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
            timezones=st.just(timezone.utc) | _OFFSETS,
        ),
        st.integers(0, 999),
    )


def versions(min_value: int = 1, max_value: int = INT64_MAX) -> st.SearchStrategy[int]:
    """Versions of stored events: 1 to 2^63-1 by default."""
    return st.integers(min_value, max_value)


def events(
    actor_id: st.SearchStrategy[str] | None = None,
    version: st.SearchStrategy[int] | None = None,
) -> st.SearchStrategy[Event]:
    return st.builds(
        Event,
        id=texts(max_size=40),
        event_type=texts(max_size=40),
        actor_id=actor_id if actor_id is not None else actor_ids(),
        version=version if version is not None else versions(),
        data=json_objects(),
        timestamp=timestamps(),
        command_id=texts(max_size=40),
    )


def snapshots(
    actor_id: st.SearchStrategy[str] | None = None,
    version: st.SearchStrategy[int] | None = None,
) -> st.SearchStrategy[ActorSnapshot]:
    return st.builds(
        ActorSnapshot,
        actor_id=actor_id if actor_id is not None else actor_ids(),
        version=version if version is not None else versions(),
        state=json_objects(),
        timestamp=timestamps(),
    )
