"""Stores a twelfth adversarial review (b) wrote: reads and latest versions answered from something
other than the events themselves (a cold archive listed by key, a near cache, a stream-head item with
an embedded tail), each broken just outside the shapes, sizes and read orders the suite uses.

Each store is tests/zoo/base.py's CorrectStore broken in one place.  ``TRIGGERS`` maps each factory
name to a deterministic function showing the bug by direct calls (True when it shows); ``BROKEN``
names the MUST requirement each one breaks.  The real CLI (default profile) certified all ten as
CONFORMANT when they were written; the thorough profile certified cold_start_after, near_cache_ids,
head_tail, inbox_head, columnar_keys and event_day too (latest_head_tail and exclusive_cold were
not run there), and caught client_long_cache and first_read_cache only as ES-CONC-001 (its
concurrent readers and writers grow a stream past 1,000 events over several handles, and its
readers read tails first).

The suite now flags all ten (tests/test_zoo.py): the long stream is read from inside its oldest
events (1, 500, 1,000, 1,001), its first event's data has keys of its own and its events are
taken on three days out of order (default, whose 10,050 events reach the archive); a 450 KB event
between two small ones is read from each version and counted; a reused event id is read before
and after the reuse, and counted; the thousand-event actor is read tail first, then again after
another handle's save.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import timedelta, timezone

from tests.zoo.base import CorrectStore, ShareState, T0, factory, ev


def _size(event) -> int:
    return len(json.dumps(event.to_dict(), separators=(",", ":"), ensure_ascii=False).encode())


# 1 ---------------------------------------------------------------------------------------------
HOT_KEEP, SEGMENT = 4_096, 1_000


def _tier(shared, actor_id) -> None:
    """Move the oldest 1,000 hot events of the actor to a cold segment once 5,096 are hot."""
    archived = shared.archived.get(actor_id, 0)
    if len(shared.events[actor_id]) - archived >= HOT_KEEP + SEGMENT:
        shared.archived[actor_id] = archived + SEGMENT


class ColdState(ShareState):
    def __init__(self) -> None:
        super().__init__()
        self.archived: dict[str, int] = {}  # how many of an actor's oldest events are in cold segments


class ColdSegmentsListedStartAfter(CorrectStore):
    """Tiered storage (Kafka tiered storage, an EventStoreDB archive, a DynamoDB table with an S3
    archive): each actor keeps its newest 4,096 events hot; older ones go to S3 in segments of
    1,000, one object per segment, keyed `<actor>/<last version, zero-padded>`.  A read from
    inside the archive lists the segments that may hold versions at or above from_version with
    ListObjectsV2 `StartAfter=<actor>/<from_version, padded>` - but StartAfter is exclusive, so
    the segment whose *last* version is from_version itself is skipped.  Only a read starting
    exactly at a segment's last version (1,000, 2,000, ...) of an actor of more than 5,096 events
    shows it."""

    def append(self, event):
        super().append(event)
        _tier(self.shared, event.actor_id)

    def select(self, actor_id, from_version):
        stream = self.shared.events.get(actor_id, [])
        archived = self.shared.archived.get(actor_id, 0)
        out = []
        for start in range(0, archived, SEGMENT):
            segment = stream[start:start + SEGMENT]
            if segment[-1].version > from_version:  # StartAfter=<from_version>: exclusive
                out.extend(e for e in segment if e.version >= from_version)
        out.extend(e for e in stream[archived:] if e.version >= from_version)
        return [copy.deepcopy(e) for e in out]


def trigger_cold_start_after():
    s = factory(ColdSegmentsListedStartAfter, ColdState)()
    for v in range(1, HOT_KEEP + SEGMENT + 1):
        s.save_event(ev("a", v, data=None))
    return [e.version for e in s.get_events("a", 1000)][:1] != [1000]


# 2 ---------------------------------------------------------------------------------------------
class NearCacheState(ShareState):
    def __init__(self) -> None:
        super().__init__()
        self.cache: dict[str, list] = {}


class NearCacheDedupesEventIds(CorrectStore):
    """A cache of each actor's events in front of the database (Redis or Hazelcast, filled by the
    first read of the actor), kept current by the save path *and* by a CDC feed (Debezium) that
    delivers every insert at least once.  To absorb the feed's redeliveries the cache appends an
    event only if no cached event of the actor has its id.  The database does not refuse reused
    event ids (ES-ID-001 lets it, it does not), so once an actor has been read, a later event
    reusing an earlier event's id is stored but never reaches the cache, and every read misses
    it.  The suite's reused-id test reads only after both saves, when the cache is filled from
    the database."""

    def append(self, event):
        super().append(event)
        cached = self.shared.cache.get(event.actor_id)
        if cached is not None and all(e.id != event.id for e in cached):
            cached.append(copy.deepcopy(event))

    def select(self, actor_id, from_version):
        cached = self.shared.cache.get(actor_id)
        if cached is None:
            stream = self.shared.events.get(actor_id)
            if not stream:
                return []
            cached = self.shared.cache[actor_id] = copy.deepcopy(stream)
        return [copy.deepcopy(e) for e in cached if e.version >= from_version]


def trigger_near_cache_ids():
    s = factory(NearCacheDedupesEventIds, NearCacheState)()
    first = ev("a", 1)
    s.save_event(first)
    s.get_events("a", 0)
    s.save_event(ev("a", 2, id=first.id))
    return [e.version for e in s.get_events("a", 0)] != [1, 2]


# 3 ---------------------------------------------------------------------------------------------
ITEM_LIMIT, TAIL_EVENTS = 400_000, 100


class HeadState(ShareState):
    def __init__(self) -> None:
        super().__init__()
        self.heads: dict[str, dict] = {}  # actor -> {"latest", "tail", "bytes"}: the stream-head item


class HeadItemTailSkipsOversized(CorrectStore):
    """DynamoDB single-table design: the stream-head item carries the latest version and, so that
    most reads cost one GetItem, the newest events embedded (at most 100, and the item under the
    400 KB item limit).  An event too large to embed is left out ("readers fall back to the
    events table for it"), but later small events are embedded after it, and a reader takes the
    embedded tail whenever it reaches the latest version and from_version is within it: the large
    event between two small ones is not there.  The suite's large events are alone in their actor
    or all large (the tail stays empty, reads go to the table)."""

    def append(self, event):
        super().append(event)
        head = self.shared.heads.setdefault(event.actor_id, {"latest": 0, "tail": [], "bytes": []})
        head["latest"] = event.version
        size = _size(event)
        if size > ITEM_LIMIT:
            return  # too large to embed: left to the events table
        head["tail"].append(copy.deepcopy(event))
        head["bytes"].append(size)
        while len(head["tail"]) > TAIL_EVENTS or sum(head["bytes"]) > ITEM_LIMIT:
            head["tail"].pop(0)
            head["bytes"].pop(0)

    def select(self, actor_id, from_version):
        head = self.shared.heads.get(actor_id)
        if head and head["tail"] and head["tail"][-1].version == head["latest"] \
                and from_version >= head["tail"][0].version:
            return [copy.deepcopy(e) for e in head["tail"] if e.version >= from_version]
        return super().select(actor_id, from_version)


def trigger_head_tail():
    s = factory(HeadItemTailSkipsOversized, HeadState)()
    s.save_event(ev("a", 1))
    s.save_event(ev("a", 2, data={"blob": "x" * 450_000}))
    s.save_event(ev("a", 3))
    return [e.version for e in s.get_events("a", 1)] != [1, 2, 3]


# 4 ---------------------------------------------------------------------------------------------
class LatestFromHeadTail(HeadItemTailSkipsOversized):
    """The same stream-head item, read the other way: get_latest_version answers with the last
    embedded event's version (one GetItem with a projection of the tail), falling back to a
    Query of the events table when the tail is empty.  An event too large to embed is not in
    the tail, so after a small event and then a large one the latest is the small one's.  The
    version check of a save queries the table (a conditional put), so saves stay right."""

    select = CorrectStore.select  # reads go to the events table

    def get_latest_version(self, actor_id):
        with self.shared.lock:
            head = self.shared.heads.get(actor_id)
            if head and head["tail"]:
                return head["tail"][-1].version
            return self.latest(actor_id)


def trigger_latest_head_tail():
    s = factory(LatestFromHeadTail, HeadState)()
    s.save_event(ev("a", 1))
    s.save_event(ev("a", 2, data={"blob": "x" * 450_000}))
    return s.get_latest_version("a") != 2


# 5 ---------------------------------------------------------------------------------------------
LONG_STREAM = 1_000


class PerClientLongStreamCache(CorrectStore):
    """Each client (handle) keeps the events of the long streams it has replayed (more than 1,000
    events: replaying those is the expensive case; short ones are re-read every time), written
    through by its own saves and otherwise trusted, as an actor framework does when one
    activation owns each actor (Orleans grain state, an Akka persistent actor's journal cache).
    A save made through another client to a long stream this one has cached is never seen by
    its reads.  The suite's cross-handle tests use streams of a few events; its long streams are
    written and read through one handle."""

    def __init__(self, shared):
        super().__init__(shared)
        self.cache: dict[str, list] = {}

    def save_event(self, event):
        super().save_event(event)
        with self.shared.lock:
            if event.actor_id in self.cache:
                self.cache[event.actor_id].append(copy.deepcopy(event))

    def select(self, actor_id, from_version):
        cached = self.cache.get(actor_id)
        if cached is None:
            stream = self.shared.events.get(actor_id, [])
            if len(stream) <= LONG_STREAM:
                return super().select(actor_id, from_version)
            cached = self.cache[actor_id] = copy.deepcopy(stream)
        return [copy.deepcopy(e) for e in cached if e.version >= from_version]


def trigger_client_long_cache():
    make = factory(PerClientLongStreamCache)
    one, two = make(), make()
    for v in range(1, LONG_STREAM + 2):
        one.save_event(ev("a", v, data=None))
    one.get_events("a", 0)
    two.save_event(ev("a", LONG_STREAM + 2))
    return one.get_events("a", LONG_STREAM + 2) == []


# 6 ---------------------------------------------------------------------------------------------
class LongStreamState(ShareState):
    def __init__(self) -> None:
        super().__init__()
        self.cache: dict[str, list] = {}


class LongStreamCacheFilledByFirstRead(CorrectStore):
    """A shared cache (Redis, one list per actor) of the streams worth caching, those of more than
    1,000 events, filled by the first read of such a stream and appended to by every save.  It
    is filled with what that first read returned: when the first read is a tail read (a
    projection catching up from its checkpoint), the cache holds the tail only, and a later
    full replay is answered with it.  The suite reads every long stream from 0 first."""

    def append(self, event):
        super().append(event)
        cached = self.shared.cache.get(event.actor_id)
        if cached is not None:
            cached.append(self.shared.events[event.actor_id][-1])

    def select(self, actor_id, from_version):
        cached = self.shared.cache.get(actor_id)
        if cached is not None:
            return [copy.deepcopy(e) for e in cached if e.version >= from_version]
        stream = self.shared.events.get(actor_id, [])
        got = [e for e in stream if e.version >= from_version]  # the stored events, never mutated
        if len(stream) > LONG_STREAM:
            self.shared.cache[actor_id] = got
        return copy.deepcopy(got)


def trigger_first_read_cache():
    s = factory(LongStreamCacheFilledByFirstRead, LongStreamState)()
    for v in range(1, LONG_STREAM + 2):
        s.save_event(ev("a", v, data=None))
    s.get_events("a", 900)
    return len(s.get_events("a", 0)) != LONG_STREAM + 1


# 7 ---------------------------------------------------------------------------------------------
class InboxState(ShareState):
    def __init__(self) -> None:
        super().__init__()
        self.heads: dict[str, int] = {}
        self.seen: dict[str, set] = {}


class LatestFromIdempotentHeadProjection(CorrectStore):
    """The stream-head table that get_latest_version reads is a projection, updated in the same
    transaction as the insert by an idempotent handler (the inbox pattern: skip a message whose
    id the actor's inbox already holds, so that redelivered events are applied once).  The
    message id is the event id.  The events table does not refuse reused event ids, and the
    save's version check runs against it, so saves stay right; but an event reusing an earlier
    event id of its actor never moves the head, and the latest stays at the version before it.
    The suite's reused-id test reads the events back, not the latest version."""

    def append(self, event):
        super().append(event)
        seen = self.shared.seen.setdefault(event.actor_id, set())
        if event.id in seen:
            return
        seen.add(event.id)
        self.shared.heads[event.actor_id] = max(self.shared.heads.get(event.actor_id, 0), event.version)

    def get_latest_version(self, actor_id):
        with self.shared.lock:
            return self.shared.heads.get(actor_id, 0)


def trigger_inbox_head():
    s = factory(LatestFromIdempotentHeadProjection, InboxState)()
    first = ev("a", 1)
    s.save_event(first)
    s.save_event(ev("a", 2, id=first.id))
    return s.get_latest_version("a") != 2


# 8 ---------------------------------------------------------------------------------------------
class ArchivedSegments(CorrectStore):
    """The tiering of ColdSegmentsListedStartAfter, listed correctly: the newest 4,096 events of an
    actor hot, older ones moved to cold segments of 1,000.  ``archive`` is what a segment reads
    back as."""

    def append(self, event):
        super().append(event)
        _tier(self.shared, event.actor_id)

    def archive(self, segment: list) -> list:
        return segment

    def select(self, actor_id, from_version):
        stream = self.shared.events.get(actor_id, [])
        archived = self.shared.archived.get(actor_id, 0)
        out = []
        for start in range(0, archived, SEGMENT):
            segment = stream[start:start + SEGMENT]
            if segment[-1].version >= from_version:
                out.extend(e for e in self.archive(copy.deepcopy(segment)) if e.version >= from_version)
        out.extend(copy.deepcopy([e for e in stream[archived:] if e.version >= from_version]))
        return out


class ColumnarArchiveUnifiesKeys(ArchivedSegments):
    """Cold segments written as Parquet (an S3/Iceberg archive, a ClickHouse or DuckDB columnar copy)
    with `data` as a struct column: `pyarrow.Table.from_pylist` infers one schema per segment, the
    union of the keys of its events' data, and fills a key an event does not have with null, so
    `{"a": 1}` archived beside `{"b": 2}` reads back as `{"a": 1, "b": None}`.  The suite's long
    stream gives every event data of the same keys, so its archive reads back unchanged."""

    def archive(self, segment):
        keys: dict[str, None] = {}
        for event in segment:
            if isinstance(event.data, dict):
                keys.update(dict.fromkeys(event.data))
        return [replace(e, data={key: e.data.get(key) for key in keys}) if isinstance(e.data, dict) else e
                for e in segment]


def trigger_columnar_keys():
    s = factory(ColumnarArchiveUnifiesKeys, ColdState)()
    for v in range(1, HOT_KEEP + SEGMENT + 1):
        s.save_event(ev("a", v, data={"first": True} if v == 1 else {"v": v}))
    return s.get_events("a", 0)[0].data != {"first": True}


# 9 ---------------------------------------------------------------------------------------------
class ArchivePartitionedByEventDay(ArchivedSegments):
    """The archive laid out Hive-style, `s3://archive/<actor>/dt=<event date, UTC>/part-N.parquet`,
    and read partition by partition in key order, each sorted by version.  Events carry the
    caller's timestamps, so an event stamped earlier than the one before it (an import, a
    backfill, a client clock behind) sits in an earlier partition and is read before events of
    lower versions.  The suite's long stream stamps every event with one time."""

    def archive(self, segment):
        def day(event):
            return event.timestamp.astimezone(timezone.utc).date().isoformat()
        return sorted(segment, key=lambda e: (day(e), e.version))


def trigger_event_day():
    s = factory(ArchivePartitionedByEventDay, ColdState)()
    for v in range(1, HOT_KEEP + SEGMENT + 1):
        s.save_event(ev("a", v, data=None, timestamp=T0 - timedelta(days=2 if v == 2 else 0)))
    return [e.version for e in s.get_events("a", 0)][:2] != [1, 2]


# 10 --------------------------------------------------------------------------------------------
class ColdReadWithExclusiveBound(ArchivedSegments):
    """The same tiering, the cold side read through an API whose range start is exclusive (an
    S3 Select / Athena query over the archive written as `version > :after`, the caller passing
    from_version as `after`; DynamoDB's ExclusiveStartKey; ListObjectsV2's StartAfter), the hot
    side with `version >= :from`.  A read starting at an archived version loses that one event;
    a read from 0 or below, or from a hot version, is right.  The suite reads a long stream only
    from 0 and from versions in its newest 5,096 events."""

    def select(self, actor_id, from_version):
        stream = self.shared.events.get(actor_id, [])
        archived = self.shared.archived.get(actor_id, 0)
        cold = [e for e in stream[:archived] if e.version > from_version]
        hot = [e for e in stream[archived:] if e.version >= from_version]
        return copy.deepcopy(cold + hot)


def trigger_exclusive_cold():
    s = factory(ColdReadWithExclusiveBound, ColdState)()
    for v in range(1, HOT_KEEP + SEGMENT + 1):
        s.save_event(ev("a", v, data=None))
    return [e.version for e in s.get_events("a", 500)][:1] != [500]


TRIGGERS = {
    "make_cold_start_after": trigger_cold_start_after,
    "make_near_cache_ids": trigger_near_cache_ids,
    "make_head_tail": trigger_head_tail,
    "make_latest_head_tail": trigger_latest_head_tail,
    "make_client_long_cache": trigger_client_long_cache,
    "make_first_read_cache": trigger_first_read_cache,
    "make_inbox_head": trigger_inbox_head,
    "make_columnar_keys": trigger_columnar_keys,
    "make_event_day": trigger_event_day,
    "make_exclusive_cold": trigger_exclusive_cold,
}

make_cold_start_after = factory(ColdSegmentsListedStartAfter, ColdState)
make_near_cache_ids = factory(NearCacheDedupesEventIds, NearCacheState)
make_head_tail = factory(HeadItemTailSkipsOversized, HeadState)
make_latest_head_tail = factory(LatestFromHeadTail, HeadState)
make_client_long_cache = factory(PerClientLongStreamCache)
make_first_read_cache = factory(LongStreamCacheFilledByFirstRead, LongStreamState)
make_inbox_head = factory(LatestFromIdempotentHeadProjection, InboxState)
make_columnar_keys = factory(ColumnarArchiveUnifiesKeys, ColdState)
make_event_day = factory(ArchivePartitionedByEventDay, ColdState)
make_exclusive_cold = factory(ColdReadWithExclusiveBound, ColdState)

BROKEN = {
    "make_cold_start_after": "ES-READ-001",
    "make_near_cache_ids": "ES-READ-003",  # the stream reads back without the event that reused an id
    "make_head_tail": "ES-READ-001",
    "make_latest_head_tail": "ES-LATEST-002",
    "make_client_long_cache": "ES-HANDLE-001",
    "make_first_read_cache": "ES-READ-001",
    "make_inbox_head": "ES-LATEST-002",
    "make_columnar_keys": "ES-READ-003",
    "make_event_day": "ES-READ-001",
    "make_exclusive_cold": "ES-READ-001",
}
