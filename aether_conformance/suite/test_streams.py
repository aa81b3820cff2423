"""Long streams and large values: what every store must carry below the floors of ES-LIMIT-001.

A store that pages its reads (LIMIT 100, a search index's 10,000-result
window, a 65,536-entry batch), keeps ids in VARCHAR(64) or VARCHAR(255)
columns, data in a 64 KiB TEXT column, or nests JSON only so deep, passes
small examples and loses events or content here.  Refusals above the floors
are test_refusals.py's.
"""

from __future__ import annotations

import json
import random
from bisect import bisect_left
from collections.abc import Callable
from datetime import timedelta

import pytest

from ..limits import ENCODED_SIZE_FLOOR, FIELD_LENGTH_FLOOR, NESTING_DEPTH_FLOOR
from ..model import Event, json_equal
from .support import (BASE_TIME, diff_event, diff_snapshot, new_event, new_snapshot, q, read_back, save_all_ok,
                      save_conflict, save_ok, versions, violated)

# Result windows real backends page or cap reads by.
READ_WINDOWS = (100, 1_000, 10_000, 65_536)
# A gap wider than any window: a store paging by version ranges that stops at an empty page loses the rest.
WIDE_GAP = 65_537


def long_stream_versions(count: int) -> list[int]:
    """``count`` versions: dense, then past a gap of 150, then past a gap wider than every window."""
    dense, middle = count * 6 // 10, count * 3 // 10
    first = list(range(1, dense + 1))
    second = list(range(dense + 151, dense + 151 + middle))
    start = second[-1] + WIDE_GAP + 1
    return first + second + list(range(start, start + count - dense - middle))


def _read_points(stream: list[int]) -> list[int]:
    """from_versions besides 0 (the whole stream, read once): the middle, the last few, past the end,
    both edges of each gap, the version-space window edges within reach, and where exactly a
    window's worth (and one more) of events remains.  A window over half the stream is left to
    the whole read, which returns more than it: each read of that size costs as much as the read
    of everything."""
    last = stream[-1]
    points = {stream[len(stream) // 2], stream[-3], stream[-1], last + 1}
    points.update(v for v in (10_001, 65_537) if v >= stream[len(stream) // 2])
    for index in range(1, len(stream)):
        if stream[index] - stream[index - 1] > 1:  # a gap: its first hole and the version after it
            points.update((stream[index - 1] + 1, stream[index]))
    for window in READ_WINDOWS:
        if 2 * (window + 1) <= len(stream):
            points.update((stream[-window], stream[-window - 1]))
    # From inside the oldest events too: an archive of segments of 1,000 behind the newest few
    # thousand, read with an exclusive bound or listed after the from_version (S3's StartAfter).
    points.update(stream[index] for index in (0, 499, 999, 1000) if index < len(stream) // 2)
    return sorted(p for p in points if p <= last + 1)


@pytest.mark.requirement("ES-READ-001", "ES-READ-003", "ES-LATEST-002")
def test_a_long_stream_is_read_whole_from_anywhere(store, fresh_actor, aether_profile):
    actor = fresh_actor("long")
    token = fresh_actor("")
    stream = long_stream_versions(aether_profile.long_stream_events)
    # Long types (past VARCHAR(200)), each event's its own: a dictionary of event types with codes
    # of 16 bits runs out in thorough's stream.
    # The first event's data has keys of its own (a columnar archive fills every event with the
    # union of a segment's keys), and the events are taken on three days out of order (an archive
    # partitioned by the event's date and read a partition at a time).
    saved = [
        Event(id=f"{token}-{version}", event_type=f"LongStreamEventTypeName.{version}." + "t" * 200, actor_id=actor,
              version=version,
              data={"first": True} if version == 1 else
              {"version": version, "line": {"sku": f"SKU-{version % 977}", "qty": version % 7, "price": 9.5}},
              timestamp=BASE_TIME - timedelta(days=version % 3), command_id=f"cmd-{token}-{version // 3}")
        for version in stream
    ]
    saved_count = 0
    for count in sorted(n for n in _BOUNDARIES if n < len(saved)):
        save_all_ok("ES-READ-003", store, saved[saved_count:count], context=f" (a stream of {len(stream)})")
        saved_count = count
        # Where segments, buckets and pages end (a new, empty segment after 4,096 events; a
        # document of 5,000), the latest version must still be the last one saved.
        latest = store.get_latest_version(actor)
        if latest != saved[count - 1].version:
            violated("ES-LATEST-002", f"saved {count} events to {q(actor)}, the last at version "
                                      f"{saved[count - 1].version}; get_latest_version returned {latest}")
    save_all_ok("ES-READ-003", store, saved[saved_count:], context=f" (a stream of {len(stream)})")
    latest = store.get_latest_version(actor)
    if latest != stream[-1]:
        violated("ES-LATEST-002", f"saved {len(stream)} events to {q(actor)} up to version {stream[-1]}; "
                                  f"get_latest_version returned {latest}")
    # The version check must see the whole stream too (a guard that looks at the first bucket only).
    save_conflict("ES-SAVE-002", store, new_event(actor, stream[-1]), latest=stream[-1])
    whole = store.get_events(actor, 0)
    if versions(whole) != stream:
        got = versions(whole)
        violated("ES-READ-001", f"saved {len(stream)} events to {q(actor)} (versions 1..{stream[-1]} with gaps); "
                                f"get_events(0) returned {len(got)} events" + _where_it_differs(stream, got))
    for expected, actual in zip(saved, whole):
        problems = diff_event(expected, actual)
        if problems:
            violated("ES-READ-003", f"event v{expected.version} of the {len(stream)}-event stream of {q(actor)} came "
                                    f"back changed: " + "; ".join(problems))
    for from_version in _read_points(stream):
        got = store.get_events(actor, from_version)
        expected = stream[bisect_left(stream, from_version):]
        if versions(got) != expected or any(a.id != b.id for a, b in zip(got, saved[len(stream) - len(expected):])):
            violated("ES-READ-001", f"saved {len(stream)} events to {q(actor)}; get_events(from_version={from_version}) "
                                    f"returned {len(got)} events, expected {len(expected)}"
                                    + _where_it_differs(expected, versions(got)))


# Versions far apart, each in a version range of its own: a store that keeps an actor's events in
# partitions of a version range (Cassandra buckets of 1,000 or 10,000 versions, sort-key shards)
# and lists the partitions a page at a time, following the first page only, loses every event past
# the first 100 or so partitions.
SPARSE_STRIDE = 65_536
SPARSE_EVENTS = 300


def _saved_then_read_back(store, actor: str, stream: list[int], from_versions, described: str) -> None:
    """Save ``stream``'s versions to ``actor``; the latest must be the last, and each read from
    ``from_versions`` exactly the versions at or above it."""
    save_all_ok("ES-READ-001", store, [new_event(actor, version) for version in stream], context=f" ({described})")
    latest = store.get_latest_version(actor)
    if latest != stream[-1]:
        violated("ES-LATEST-002", f"saved {len(stream)} events to {q(actor)} ({described}); get_latest_version "
                                  f"returned {latest}, expected {stream[-1]}")
    for from_version in from_versions:
        got = versions(store.get_events(actor, from_version))
        expected = stream[bisect_left(stream, from_version):]
        if got != expected:
            violated("ES-READ-001", f"saved {len(stream)} events to {q(actor)} ({described}); get_events(from_version="
                                    f"{from_version}) returned {len(got)} events, expected {len(expected)}"
                                    + _where_it_differs(expected, got))


@pytest.mark.requirement("ES-READ-001", "ES-LATEST-002")
def test_a_sparse_stream_across_hundreds_of_version_ranges_is_read_whole(store, fresh_actor):
    stream = [k * SPARSE_STRIDE for k in range(1, SPARSE_EVENTS + 1)]
    _saved_then_read_back(store, fresh_actor("sparse"), stream, (0, stream[99] + 1, stream[-1]),
                          f"versions {SPARSE_STRIDE:,} apart up to {stream[-1]:,}")


# Full pages that end at the highest versions: a keyset cursor set to the last version + 1 after a
# full page overflows int64 past 2**63 - 1, and in a float64 stands still past 2**53.  1,000 events
# end a page of 100, 200, 250, 500 or 1,000 there; 1,024 one of 64 to 1,024.
TOP_RUNS = ((2**63 - 1, 1_000), (2**63 - 1, 1_024), (2**53, 1_000))


@pytest.mark.requirement("ES-READ-001", "ES-LATEST-002")
@pytest.mark.parametrize("top, count", TOP_RUNS, ids=[f"{count}-up-to-{top}" for top, count in TOP_RUNS])
def test_full_pages_ending_at_the_highest_versions_are_read_whole(store, fresh_actor, top, count):
    stream = list(range(top - count + 1, top + 1))
    _saved_then_read_back(store, fresh_actor("top"), stream, (0, stream[0], top - 99, top),
                          f"versions {stream[0]} to {top}")


_BOUNDARIES = frozenset({n + d for n in (*(2**k for k in range(6, 18)), 100, 1_000, 5_000, 10_000, 50_000, 100_000)
                         for d in (-1, 0, 1)})


def _where_it_differs(expected: list[int], got: list[int]) -> str:
    for index, (want, have) in enumerate(zip(expected, got)):
        if want != have:
            return f"; the {index + 1}th is version {have}, expected {want}"
    if len(got) < len(expected):
        return f"; it stops after version {got[-1] if got else None}, missing {expected[len(got)]}.."
    return f"; it goes on past version {expected[-1] if expected else None} with {got[len(expected)]}"


# Events below the size floor that together pass what one page, batch or document holds:
# DynamoDB pages a Query at 1 MB, NATS caps a fetch batch by bytes, MongoDB keeps a document (an
# actor's events embedded in one) under 16 MiB, and MySQL cuts a GROUP_CONCAT at its
# group_concat_max_len (often raised to 32 MiB) and a packet at max_allowed_packet (64 MiB): the
# profile's large_actor_mebibytes (17, 33 and 65) passes the limits its size allows.
EVENT_BYTES = 480_000


@pytest.mark.requirement("ES-READ-001", "ES-READ-003")
def test_a_large_actor_is_read_whole(store, fresh_actor, aether_profile):
    actor = fresh_actor()
    total = aether_profile.large_actor_mebibytes * 1024 * 1024
    count = -(-total // EVENT_BYTES)
    every = list(range(1, count + 1))
    blob = _blob_of(EVENT_BYTES, "x")
    save_all_ok("ES-READ-001", store, [new_event(actor, version, data=blob) for version in every],
                context=f" (one of {count} events, {EVENT_BYTES:,} bytes each: {total:,} bytes in all)")
    for from_version in (0, 2, count - 1):
        events = store.get_events(actor, from_version)
        got = versions(events)
        expected = [v for v in every if v >= from_version]
        if got != expected:
            violated("ES-READ-001", f"saved {count} events of {EVENT_BYTES:,} bytes each to {q(actor)}; get_events("
                                    f"from_version={from_version}) returned {len(got)} events"
                                    + _where_it_differs(expected, got))
        # Every event has the same data: a store that writes a repeat as "same as the one before"
        # must resolve it in a read that starts after the event it repeats.
        changed = [event.version for event in events if not json_equal(event.data, blob)]
        if changed:
            violated("ES-READ-003", f"saved {count} events with the same data of {EVENT_BYTES:,} bytes to {q(actor)}; "
                                    f"get_events(from_version={from_version}) returned other data for versions "
                                    f"{changed[:5]}{'...' if len(changed) > 5 else ''}")


@pytest.mark.requirement("ES-READ-001", "ES-LATEST-002")
def test_a_large_event_between_small_ones_is_read_and_counted(store, fresh_actor):
    # A stream-head item that embeds the newest events under an item size limit (DynamoDB's 400 KB)
    # skips one too large to embed: reads served from that tail, and a latest version taken from
    # it, miss the large event.
    actor = fresh_actor("mixed")
    for version in (1, 2, 3):
        data = {"blob": "L" * 450_000} if version == 2 else {"v": version}
        save_ok("ES-READ-001", store, new_event(actor, version, data=data), context=" (event 2 of 450 KB, 1 and 3 small)")
        latest = store.get_latest_version(actor)
        if latest != version:
            violated("ES-LATEST-002", f"saved versions 1 to {version} to {q(actor)} (version 2 of 450 KB, the others "
                                      f"small); get_latest_version returned {latest}")
    for start in (0, 1, 2, 3):
        got = versions(store.get_events(actor, start))
        if got != [v for v in (1, 2, 3) if v >= start]:
            violated("ES-READ-001", f"saved versions 1 to 3 to {q(actor)} (version 2 of 450 KB, the others small); "
                                    f"get_events(from_version={start}) returned versions {got}")


@pytest.mark.requirement("SS-SNAP-004", "SS-SNAP-002")
def test_a_snapshot_of_a_long_stream_changes_none_of_its_events(snapshot_store, fresh_actor):
    # Stores that compact (truncate-before, max-age by count, "keep 1,000 behind the snapshot")
    # once a stream is long enough and a snapshot covers it delete events a reader still asks
    # for, at once or at the next append.  1,050 events, snapshots at 1, 200 and the end: past
    # thresholds of 100, 200 and 1,000.  Snapshot retention must not lose the highest snapshot
    # however far the events have run ahead of it (a cut taken from the event sequence number),
    # nor skip one saved far behind them (a guard against "outdated" snapshots).
    actor = fresh_actor("snapshotted")
    stream = list(range(1, 1051))
    save_ok("SS-SNAP-004", snapshot_store, new_event(actor, 1))
    snapshot_store.save_snapshot(new_snapshot(actor, 1))
    save_all_ok("SS-SNAP-004", snapshot_store, [new_event(actor, version) for version in stream[1:]],
                context=f" (a stream of {len(stream)})")
    _check_latest_snapshot(snapshot_store, actor, 1, f"saved a snapshot at version 1, then events up to {stream[-1]}")
    for snapshot_version in (200, None):
        if snapshot_version is None:  # the end, after one more event
            stream.append(stream[-1] + 1)
            save_ok("SS-SNAP-004", snapshot_store, new_event(actor, stream[-1]), context=" (after a snapshot at 200)")
            snapshot_version = stream[-1]
        snapshot_store.save_snapshot(new_snapshot(actor, snapshot_version))
        _check_latest_snapshot(snapshot_store, actor, snapshot_version,
                               f"saved a snapshot at version {snapshot_version} when events went up to {stream[-1]}")
        got = versions(snapshot_store.get_events(actor, 0))
        if got != stream or snapshot_store.get_latest_version(actor) != stream[-1]:
            violated("SS-SNAP-004", f"saved {len(stream)} events to {q(actor)} and a snapshot at version "
                                    f"{snapshot_version}; get_events(0) then returned {len(got)} events"
                                    + _where_it_differs(stream, got))
        # Reads from inside the stream too: an archive of the events far behind the snapshot that
        # only a read from 0 includes loses them for every other reader.
        for from_version in (1, 10, stream[-1] - 1_000):
            got = versions(snapshot_store.get_events(actor, from_version))
            if got != stream[from_version - 1:]:
                violated("SS-SNAP-004", f"saved {len(stream)} events to {q(actor)} and a snapshot at version "
                                        f"{snapshot_version}; get_events(from_version={from_version}) then returned "
                                        f"{len(got)} events" + _where_it_differs(stream[from_version - 1:], got))


def _check_latest_snapshot(store, actor: str, expected: int, what: str) -> None:
    got = store.get_latest_snapshot(actor)
    if got is None or got.version != expected:
        violated("SS-SNAP-002", f"{what} of {q(actor)}; get_latest_snapshot returned "
                                f"{'None' if got is None else f'version {got.version}'}, expected version {expected}")


def _repeated(char: str) -> Callable[[int], str]:
    return lambda length: char * length


def _random_text(low: int, high: int) -> Callable[[int], str]:
    # Text no compressor shrinks: an index whose row limit applies after compression (PostgreSQL's
    # 2,704-byte btree entries) passes any repeated character and refuses this.
    def text(length: int) -> str:
        rng = random.Random(f"{low}-{high}-{length}")
        return "".join(chr(rng.randrange(low, high)) for _ in range(length))
    return text


FIELD_CHARACTERS = {"ascii": _repeated("a"), "two-byte": _repeated("é"), "three-byte": _repeated("€"),
                    "four-byte": _repeated("🦀"), "random-ascii": _random_text(0x21, 0x7F),
                    "random-cjk": _random_text(0x4E00, 0x9FA6)}
FIELD_LENGTHS = (65, 256, FIELD_LENGTH_FLOOR)


@pytest.mark.requirement("ES-READ-003")
@pytest.mark.parametrize("length", FIELD_LENGTHS)
@pytest.mark.parametrize("kind", sorted(FIELD_CHARACTERS))
def test_long_ids_types_and_command_ids_round_trip(store, fresh_actor, kind, length):
    # Characters, not bytes: a byte-limited column (VARCHAR(255) in bytes, 1 KiB keys) truncates
    # a multi-byte field that a character count lets through.
    text = FIELD_CHARACTERS[kind](length)
    actor = fresh_actor()
    token = fresh_actor("")
    event = new_event(actor, 1, id=(token + text)[:length], event_type="T" + text[1:], command_id=text[1:] + "C")
    save_ok("ES-READ-003", store, event, context=f" (id, event_type and command_id of {length} {kind} characters)")
    got = read_back(store, actor, 0, [1])
    if diff_event(event, got[0]):
        problems = diff_event(event, got[0])
        violated("ES-READ-003", f"an event of {q(actor)} whose id, event_type and command_id are {length} {kind} "
                                f"characters came back changed: " + "; ".join(p[:300] for p in problems))


def _encoded_size(value) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def _blob_of(size: int, char: str) -> dict:
    """Data whose compact JSON encoding is ``size`` bytes (the rest of the event is on top of it)."""
    overhead = _encoded_size({"blob": ""})
    per_char = len(char.encode())
    return {"blob": char * ((size - overhead) // per_char)}


def _rows(count: int) -> dict:
    return {"rows": [{"sku": f"SKU-{i:05d}", "qty": i % 9, "price": i / 8, "tags": ["a", "b"]} for i in range(count)]}


def _nested(depth: int, shape: str) -> dict:
    """Data of ``depth`` nested containers, the data object itself the first."""
    inner: object = "bottom"
    for level in range(depth - 1, 0, -1):
        inner = [inner] if shape == "lists" or (shape == "mixed" and level % 2) else {"d": inner}
    return {"d": inner}


_HEADROOM = 2_048  # id, type, actor, timestamp and keys of the event or snapshot around the data

# Data (or state) over 64 KiB and up to the floor; built when a test runs, not at collection.
LARGE_AND_DEEP = {
    "string-just-over-64k": lambda: _blob_of(65_536 + 1, "x"),
    "string-at-the-floor": lambda: _blob_of(ENCODED_SIZE_FLOOR - _HEADROOM, "x"),
    "multibyte-string-at-the-floor": lambda: _blob_of(ENCODED_SIZE_FLOOR - _HEADROOM, "é"),
    "many-keys-over-64k": lambda: {f"key-{i:05d}": i for i in range(6000)},
    "many-rows-over-64k": lambda: _rows(1200),
    "nesting-dicts": lambda: _nested(NESTING_DEPTH_FLOOR, "dicts"),
    "nesting-lists": lambda: _nested(NESTING_DEPTH_FLOOR, "lists"),
    "nesting-mixed": lambda: _nested(NESTING_DEPTH_FLOOR, "mixed"),
}


@pytest.mark.requirement("ES-READ-003")
@pytest.mark.parametrize("case", sorted(LARGE_AND_DEEP))
def test_large_and_deep_data_round_trips(store, fresh_actor, case):
    actor = fresh_actor()
    data = LARGE_AND_DEEP[case]()
    event = new_event(actor, 1, data=data)
    size = _encoded_size(event.to_dict())
    assert size <= ENCODED_SIZE_FLOOR, f"the suite built an event of {size} bytes, above the floor"  # a suite bug
    save_ok("ES-READ-003", store, event, context=f" ({case}, {size:,} bytes encoded)")
    got = read_back(store, actor, 0, [1])
    if diff_event(event, got[0]):
        problems = diff_event(event, got[0])
        violated("ES-READ-003", f"an event of {q(actor)} with {case} data ({size:,} bytes encoded, within the "
                                f"{ENCODED_SIZE_FLOOR:,}-byte floor) came back changed: " + "; ".join(p[:300] for p in problems))


@pytest.mark.requirement("SS-SNAP-003")
@pytest.mark.parametrize("case", sorted(LARGE_AND_DEEP))
def test_large_and_deep_state_round_trips(snapshot_store, fresh_actor, case):
    actor = fresh_actor()
    state = LARGE_AND_DEEP[case]()
    save_ok("SS-SNAP-003", snapshot_store, new_event(actor, 1))
    snapshot = new_snapshot(actor, 1, state=state)
    size = _encoded_size(snapshot.to_dict())
    assert size <= ENCODED_SIZE_FLOOR, f"the suite built a snapshot of {size} bytes, above the floor"
    snapshot_store.save_snapshot(snapshot)
    got = snapshot_store.get_latest_snapshot(actor)
    if got is None or diff_snapshot(snapshot, got):
        problems = diff_snapshot(snapshot, got) if got is not None else ["get_latest_snapshot returned None"]
        violated("SS-SNAP-003", f"a snapshot of {q(actor)} with {case} state ({size:,} bytes encoded, within the "
                                f"{ENCODED_SIZE_FLOOR:,}-byte floor) came back changed: " + "; ".join(p[:300] for p in problems))
