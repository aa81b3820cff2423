"""Stores a sixth adversarial review (b) wrote, modelled on documented behaviour of DynamoDB,
Cassandra/Scylla, EventStoreDB, Kafka, Firestore, Postgres and S3: bugs just outside the values,
sizes, orders and ids the suite already uses.

Each store is tests/zoo/base.py's CorrectStore broken in one place.  ``TRIGGERS`` maps each factory
name to a deterministic function showing the bug by direct calls (True when it shows); ``BROKEN``
names the MUST requirement each one breaks.  The real CLI (quick profile) certified 15 of the 17
before this review; the suite now flags all 17 for their requirement
(tests/test_zoo.py; two need the profile that reaches them: 10,000 records, a 60 s revisit).
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import replace
from datetime import timedelta

from aether_conformance.timestamps import format_go_time, utc_microseconds
from tests.zoo.base import CorrectStore, ShareState, T0, ev, factory, snap


def _json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# 1 ---------------------------------------------------------------------------------------------
class SnapshotsClusteredByTakenAt(CorrectStore):
    """Cassandra/Scylla: snapshots in `PRIMARY KEY ((actor_id), taken_at, version) WITH CLUSTERING
    ORDER BY (taken_at DESC, version DESC)` (the usual time-series layout), the latest read with
    `LIMIT 1`.  The row first in clustering order is the one with the latest *timestamp*, not the
    highest version: a lower snapshot taken later (a rebuild, a replica catching up) hides a
    higher one taken earlier."""

    def get_latest_snapshot(self, actor_id):
        with self.shared.lock:
            rows = self.shared.snapshots.get(actor_id)
            if not rows:
                return None
            return copy.deepcopy(max(rows, key=lambda s: (utc_microseconds(s.timestamp), s.version)))


def trigger_taken_at():
    s = factory(SnapshotsClusteredByTakenAt)()
    s.save_event(ev("a", 2))
    s.save_snapshot(snap("a", 2, timestamp=T0))
    s.save_snapshot(snap("a", 1, timestamp=T0 + timedelta(seconds=1)))
    return s.get_latest_snapshot("a").version == 1


# 2 ---------------------------------------------------------------------------------------------
class SnapshotTieCellMerge(CorrectStore):
    """Cassandra/Scylla: one snapshot row per actor, written with `USING TIMESTAMP <version>` so
    that the highest version wins whatever the order of arrival (last-write-wins on the write
    timestamp).  Cassandra reconciles *each cell* separately, and on equal write timestamps keeps
    the greater cell value (byte order).  Two snapshots at the same version therefore merge: the
    state cell of one and the taken_at cell (RFC 3339 text) of the other - a snapshot nobody saved."""

    def save_snapshot(self, snapshot):
        with self.shared.lock:
            row = self.shared.snapshots.get(snapshot.actor_id)
            new = copy.deepcopy(snapshot)
            if not row or new.version > row[0].version:
                self.shared.snapshots[snapshot.actor_id] = [new]
            elif new.version == row[0].version:
                old = row[0]
                if _json(new.state).encode() > _json(old.state).encode():
                    old = replace(old, state=new.state)
                if format_go_time(new.timestamp).encode() > format_go_time(old.timestamp).encode():
                    old = replace(old, timestamp=new.timestamp)
                row[0] = old


def trigger_cell_merge():
    s = factory(SnapshotTieCellMerge)()
    s.save_event(ev("a", 1))
    first = snap("a", 1, state={"z": 1}, timestamp=T0)
    second = snap("a", 1, state={"a": 1}, timestamp=T0 + timedelta(seconds=1))
    s.save_snapshot(first)
    s.save_snapshot(second)
    got = s.get_latest_snapshot("a")
    return (got.state, got.timestamp) not in ((first.state, first.timestamp), (second.state, second.timestamp))


# 3 ---------------------------------------------------------------------------------------------
class LogState(ShareState):
    def __init__(self):
        super().__init__()
        self.offset = 0  # records appended to the topic
        self.offsets = {}  # (actor, version) -> offset of its record
        self.heads = {}  # the stream-head table the check and get_latest_version read


class HeadTableStore(CorrectStore):
    """Events in one place, each stream's head (what the check and get_latest_version read) in a
    table of its own: events that vanish later leave the head counting them."""

    def latest(self, actor_id):
        return self.shared.heads.get(actor_id, 0)

    def check_and_append(self, event):
        with self.shared.lock:
            latest = self.latest(event.actor_id)
            if self.is_conflict(event, latest):
                raise self.conflict(event, latest)
            self.append(event)
            self.shared.heads[event.actor_id] = event.version


TOMBSTONE_RETENTION = 10_000  # records (delete.retention, counted in records here)


class CloudEventsNullDataTombstone(HeadTableStore):
    """Kafka: events on a compacted topic keyed `<actor>/<version>`, in CloudEvents *binary* mode:
    id, type, time and the rest travel as `ce_*` headers and the record value is the data alone.
    A nil data map is a null value - a tombstone.  The log cleaner removes tombstones once
    delete.retention has passed (here: 10,000 records behind the log end, checked every 1,024
    appends), so an event saved with data null vanishes from its stream some time later; the
    stream head (a separate table) still counts it."""

    def append(self, event):
        super().append(event)
        shared = self.shared
        shared.offset += 1
        shared.offsets[(event.actor_id, event.version)] = shared.offset
        if shared.offset % 1024 == 0:
            horizon = shared.offset - TOMBSTONE_RETENTION
            for actor, stream in shared.events.items():
                stream[:] = [e for e in stream
                             if e.data is not None or shared.offsets[(actor, e.version)] > horizon]


def trigger_tombstone():
    s = factory(CloudEventsNullDataTombstone, LogState)()
    s.save_event(ev("a", 1, data=None))
    for i in range(TOMBSTONE_RETENTION + 1024):
        s.save_event(ev(f"o{i}", 1))
    return s.get_events("a", 0) == []


# 4 ---------------------------------------------------------------------------------------------
class IdIndexState(ShareState):
    def __init__(self):
        super().__init__()
        self.ids = set()  # the index: event ids cut to 1,500 UTF-8 bytes


INDEXED_BYTES = 1500


class FirestoreIdIndexTruncated(CorrectStore):
    """Firestore: event ids are refused when already stored (ES-ID-001 allows it), found by an
    equality query on an indexed `eventId` field.  Firestore indexes only the first 1,500 bytes of a
    string ("values larger than 1,500 bytes are truncated ... queries involving truncated field
    values may return inconsistent results"), so a new id that shares its first 1,500 UTF-8 bytes
    with a stored one (a 1,024-character id of two-byte letters, a long hierarchical id) is taken
    for a reuse and refused: a save at a new version with a new id fails."""

    def check_and_append(self, event):
        with self.shared.lock:
            latest = self.latest(event.actor_id)
            if self.is_conflict(event, latest):
                raise self.conflict(event, latest)
            key = event.id.encode("utf-8")[:INDEXED_BYTES]
            if key in self.shared.ids:
                raise ValueError(f"event id {event.id[:40]!r}... is already stored")
            self.append(event)
            self.shared.ids.add(key)


def trigger_firestore_ids():
    s = factory(FirestoreIdIndexTruncated, IdIndexState)()
    s.save_event(ev("a", 1, id="é" * 750 + "one"))
    try:
        s.save_event(ev("b", 1, id="é" * 750 + "two"))
    except ValueError:
        return True
    return False


# 5 ---------------------------------------------------------------------------------------------
class EsdbLinkTypeResolved(CorrectStore):
    """EventStoreDB: one stream per actor, read with resolveLinkTos=true (needed for the store's
    category streams).  An event whose type is `$>` is a link: the server resolves its data as
    `<n>@<stream>`; when that is no such event, the ResolvedEvent has no Event, and the reader
    (`[to_event(r.event) for r in read if r.event]`) drops it.  Event types are opaque strings in
    the spec: an event of type `$>` is written, counted, and never read back."""

    def select(self, actor_id, from_version):
        return [e for e in super().select(actor_id, from_version) if e.event_type != "$>"]


def trigger_link_type():
    s = factory(EsdbLinkTypeResolved)()
    s.save_event(ev("a", 1, event_type="$>"))
    return s.get_events("a", 0) == [] and s.get_latest_version("a") == 1


# 6 ---------------------------------------------------------------------------------------------
class ClaimCheckState(ShareState):
    def __init__(self):
        super().__init__()
        self.payloads = {}  # S3: payloads/<event id> -> data
        self.pointers = {}  # actor -> ids of its events whose item holds a pointer (an attribute flag)


ITEM_LIMIT = 400 * 1024


class DynamoClaimCheckByEventId(CorrectStore):
    """DynamoDB items are limited to 400 KB, so events above it keep their data in S3 (the
    claim-check pattern, as the AWS docs advise) under `payloads/<event id>`, the item holding a
    pointer.  The key is the event id alone: a second large event with an id another actor (or an
    accepted reuse) already used overwrites the first one's payload, whose event then reads back
    with the other's data.  Small events, and large ones with fresh ids, are right."""

    def append(self, event):
        stored = copy.deepcopy(event)
        if len(_json(event.to_dict()).encode()) > ITEM_LIMIT:
            self.shared.payloads[event.id] = copy.deepcopy(event.data)
            self.shared.pointers.setdefault(event.actor_id, set()).add(event.id)
            stored = replace(stored, data={"$s3": event.id})
        self.shared.events.setdefault(event.actor_id, []).append(stored)

    def select(self, actor_id, from_version):
        out = []
        for e in self.shared.events.get(actor_id, []):
            if e.version >= from_version:
                e = copy.deepcopy(e)
                if e.id in self.shared.pointers.get(actor_id, ()):
                    e = replace(e, data=copy.deepcopy(self.shared.payloads[e.data["$s3"]]))
                out.append(e)
        return out


def trigger_claim_check():
    s = factory(DynamoClaimCheckByEventId, ClaimCheckState)()
    big = "x" * (ITEM_LIMIT + 10)
    s.save_event(ev("a", 1, id="same", data={"owner": "a", "blob": big}))
    s.save_event(ev("b", 1, id="same", data={"owner": "b", "blob": big}))
    return s.get_events("a", 0)[0].data["owner"] == "b"


# 7 ---------------------------------------------------------------------------------------------
class CompactedState(ShareState):
    def __init__(self):
        super().__init__()
        self.log = []  # snapshot records in topic order (key = actor id)


ACTIVE_SEGMENT = 1000


class KafkaCompactedSnapshotTopic(CorrectStore):
    """Kafka: snapshots on a compacted topic keyed by actor id; readers take the highest version
    among the actor's records.  Compaction keeps the *last value per key*, and works on closed
    segments only: once a snapshot's segment rolls (here, 1,000 records later) and the cleaner
    runs, only the actor's last-written record survives - a lower snapshot saved after the highest
    (a slow writer, a rebuild) is then all that remains."""

    def save_snapshot(self, snapshot):
        with self.shared.lock:
            log = self.shared.log
            log.append(copy.deepcopy(snapshot))
            if len(log) % 100 == 0 and len(log) > ACTIVE_SEGMENT:
                closed, active = log[:-ACTIVE_SEGMENT], log[-ACTIVE_SEGMENT:]
                last = {}
                for index, record in enumerate(closed):
                    last[record.actor_id] = index
                kept = [r for i, r in enumerate(closed) if last[r.actor_id] == i]
                log[:] = kept + active

    def get_latest_snapshot(self, actor_id):
        with self.shared.lock:
            mine = [s for s in self.shared.log if s.actor_id == actor_id]
            return copy.deepcopy(max(mine, key=lambda s: s.version)) if mine else None


def trigger_compacted_snapshots():
    s = factory(KafkaCompactedSnapshotTopic, CompactedState)()
    s.save_event(ev("a", 5))
    s.save_snapshot(snap("a", 5))
    s.save_snapshot(snap("a", 3))
    for i in range(ACTIVE_SEGMENT + 100):
        s.save_snapshot(snap(f"o{i}", 0))
    return s.get_latest_snapshot("a").version == 3


# 8 ---------------------------------------------------------------------------------------------
class PgNullsFirstSnapshotZero(CorrectStore):
    """Postgres: the snapshot version column is nullable and the mapper writes version 0 as NULL
    (Go's sql.NullInt64{Valid: v != 0}, or NULLIF(version, 0): "0 means unset") and reads NULL
    back as 0.  The latest snapshot is `ORDER BY version DESC LIMIT 1`, and Postgres sorts NULLs
    *first* in descending order: an initial snapshot at version 0 beats every later one."""

    def get_latest_snapshot(self, actor_id):
        with self.shared.lock:
            rows = self.shared.snapshots.get(actor_id)
            if not rows:
                return None
            nulls = [s for s in rows if s.version == 0]
            return copy.deepcopy(nulls[0] if nulls else max(rows, key=lambda s: s.version))


def trigger_nulls_first():
    s = factory(PgNullsFirstSnapshotZero)()
    s.save_snapshot(snap("a", 0))
    s.save_event(ev("a", 3))
    s.save_snapshot(snap("a", 3))
    return s.get_latest_snapshot("a").version == 0


# 9 ---------------------------------------------------------------------------------------------
S3_PAGE = 1000


class S3DelimiterPageShortStop(CorrectStore):
    """S3: events at `events/<actor>/<version, 20 digits>`, read with ListObjectsV2(Prefix=
    'events/<actor>/', Delimiter='/') so that the events of an actor `<actor>/x` (a folder below)
    are left out.  The loop stops when a page has fewer than MaxKeys=1,000 Contents instead of
    testing IsTruncated; but CommonPrefixes count towards MaxKeys.  An actor with over 1,000
    events and a child actor whose name sorts before the digits (`x/-eu`, `x/.old`, `x/ a`) gets a
    first page of 999 events and one prefix, and the read stops there."""

    def select(self, actor_id, from_version):
        stream = self.shared.events.get(actor_id, [])
        if len(stream) < S3_PAGE:
            return super().select(actor_id, from_version)
        prefix = f"events/{actor_id}/"
        entries = {f"{prefix}{e.version:020d}": e for e in stream}
        for other in self.shared.events:
            if other.startswith(actor_id + "/") and self.shared.events[other]:
                rest = other[len(actor_id) + 1:] + "/"
                entries.setdefault(prefix + rest[:rest.index("/") + 1], None)
        keys = sorted(entries, key=lambda k: k.encode())
        out = []
        for start in range(0, len(keys), S3_PAGE):
            page = [entries[k] for k in keys[start:start + S3_PAGE]]
            contents = [e for e in page if e is not None]
            out.extend(contents)
            if len(contents) < S3_PAGE:
                break
        return [copy.deepcopy(e) for e in sorted(out, key=lambda e: e.version) if e.version >= from_version]


def trigger_s3_delimiter():
    s = factory(S3DelimiterPageShortStop)()
    for v in range(1, 1101):
        s.save_event(ev("x", v))
    s.save_event(ev("x/-eu", 1))
    return len(s.get_events("x", 0)) != 1100


# 10 --------------------------------------------------------------------------------------------
FIRESTORE_DOCUMENT = 1_048_576


def firestore_size(value) -> int:
    """Storage size of a value in Firestore's documented accounting (strings: UTF-8 bytes + 1;
    integers and doubles: 8; booleans and null: 1; maps: each key's bytes + 1 plus its value)."""
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, (int, float)):
        return 8
    if isinstance(value, str):
        return len(value.encode()) + 1
    if isinstance(value, list):
        return sum(firestore_size(v) for v in value)
    return sum(len(k.encode()) + 1 + firestore_size(v) for k, v in value.items())


class FirestoreNativeDocumentSize(CorrectStore):
    """Firestore: one document per event, data kept as native maps and arrays (so that it can be
    queried).  A document may not exceed 1 MiB, counted in Firestore's own accounting, where every
    number costs 8 bytes: an event whose compact JSON is 300-odd KiB of small numbers (a sample
    series, a matrix) is several times bigger as a document and is refused (the store raises
    ValueError, storing nothing) - below the 512 KiB floor every store must accept."""

    def check_and_append(self, event):
        if firestore_size(event.to_dict()) + 32 > FIRESTORE_DOCUMENT:
            raise ValueError("Firestore: the event document exceeds 1,048,576 bytes")
        super().check_and_append(event)


def trigger_firestore_size():
    s = factory(FirestoreNativeDocumentSize)()
    data = {"samples": [i % 10 for i in range(150_000)]}  # 300 KB of compact JSON
    try:
        s.save_event(ev("a", 1, data=data))
    except ValueError:
        return True
    return False


# 11 --------------------------------------------------------------------------------------------
TTL_ATTRIBUTE = "ttl"
NOW_EPOCH_SECONDS = 1_764_800_000  # the sweeper's clock (December 2025)


class DynamoTtlAttributeInData(HeadTableStore):
    """DynamoDB: events stored with their data flattened into top-level item attributes (what
    DynamoDBMapper / PynamoDB models with a dynamic map do), in a table that also holds the store's
    idempotency records and so has Time to Live enabled on the attribute `ttl`.  An event whose data
    has a top-level numeric `ttl` (a cache lifetime, a token's expiry - an epoch-seconds number in
    the past, or just 300) is deleted by the TTL sweeper some time later (here: every 1,024 saves);
    the stream head still counts it."""

    def append(self, event):
        super().append(event)
        self.shared.offset += 1
        if self.shared.offset % 1024 == 0:
            for stream in self.shared.events.values():
                stream[:] = [e for e in stream if not _expired(e.data)]


def _expired(data) -> bool:
    value = data.get(TTL_ATTRIBUTE) if isinstance(data, dict) else None
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value < NOW_EPOCH_SECONDS


def trigger_ttl_attribute():
    s = factory(DynamoTtlAttributeInData, LogState)()
    s.save_event(ev("a", 1, data={"token": "t", "ttl": 300}))
    for i in range(1024):
        s.save_event(ev(f"o{i}", 1))
    return s.get_events("a", 0) == [] and s.get_latest_version("a") == 1


# 12 --------------------------------------------------------------------------------------------
QUERY_PAGE = 1_000_000


class DynamoSnapshotFirstPageOnly(CorrectStore):
    """DynamoDB: snapshots under (actor, version), the latest read by a Query in ascending order,
    taking the last item of the response - without following LastEvaluatedKey.  A Query returns at
    most 1 MB per page: once an actor's snapshot items total more than 1 MB (a few thousand small
    snapshots, or three of just under 400 KB; larger states go to S3 and leave a pointer), the
    highest is on a later page and an older one is returned."""

    def get_latest_snapshot(self, actor_id):
        with self.shared.lock:
            rows = sorted(self.shared.snapshots.get(actor_id, []), key=lambda s: s.version)
            page, size = [], 0
            for row in rows:
                encoded = len(_json(row.to_dict()).encode())
                size += encoded if encoded <= ITEM_LIMIT else 200  # a larger state lives in S3
                if page and size > QUERY_PAGE:
                    break
                page.append(row)
            return copy.deepcopy(page[-1]) if page else None


def trigger_snapshot_first_page():
    s = factory(DynamoSnapshotFirstPageOnly)()
    s.save_event(ev("a", 3))
    for v in (1, 2, 3):
        s.save_snapshot(snap("a", v, state={"blob": "x" * 380_000}))
    return s.get_latest_snapshot("a").version != 3


# 13 --------------------------------------------------------------------------------------------
def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as an unsigned 32-bit int."""
    m, h = 0x5BD1E995, (0x9747B28C ^ len(data)) & 0xFFFFFFFF
    whole = len(data) // 4 * 4
    for i in range(0, whole, 4):
        k = (int.from_bytes(data[i:i + 4], "little") * m) & 0xFFFFFFFF
        k = ((k ^ (k >> 24)) * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    rest = len(data) - whole
    if rest == 3:
        h ^= data[whole + 2] << 16
    if rest >= 2:
        h ^= data[whole + 1] << 8
    if rest >= 1:
        h = ((h ^ data[whole]) * m) & 0xFFFFFFFF
    h = ((h ^ (h >> 13)) * m) & 0xFFFFFFFF
    return h ^ (h >> 15)


MURMUR2_TWINS = ("order-80130", "order-137953")  # equal murmur2 hashes


class KafkaStateStoreKeyedByHash(CorrectStore):
    """Kafka Streams: the events of each partition indexed in a local RocksDB state store keyed by
    the record key's murmur2 hash (the 32 bits the default partitioner already computed, "to keep
    keys small"), the actor id kept only in the record.  Two actor ids with equal murmur2 hashes
    (`order-80130` and `order-137953`) land in one partition and one index entry: they share a
    stream, a latest version and conflicts."""

    def _key(self, actor_id):
        return murmur2(actor_id.encode("utf-8"))

    def latest(self, actor_id):
        stream = self.shared.events.get(self._key(actor_id))
        return stream[-1].version if stream else 0

    def append(self, event):
        self.shared.events.setdefault(self._key(event.actor_id), []).append(copy.deepcopy(event))

    def select(self, actor_id, from_version):
        return [replace(copy.deepcopy(e), actor_id=actor_id)
                for e in self.shared.events.get(self._key(actor_id), []) if e.version >= from_version]


def trigger_murmur2():
    s = factory(KafkaStateStoreKeyedByHash)()
    left, right = MURMUR2_TWINS
    s.save_event(ev(left, 1))
    return s.get_latest_version(right) == 1


# 14 --------------------------------------------------------------------------------------------
NODE_ENTRIES = 100  # stream-node-max-entries
KEEP = 10


class RedisApproximateSnapshotTrim(CorrectStore):
    """Redis Streams: snapshots appended with `XADD snap:<actor> MAXLEN ~ 10 * ...`, the latest
    being the highest version among the entries kept.  Approximate trimming removes whole radix
    tree nodes (stream-node-max-entries, 100) and only while at least 10 entries would remain:
    nothing is trimmed until an actor has 110 snapshots, so a highest snapshot followed by 100
    lower ones survives, one followed by 110 does not."""

    def save_snapshot(self, snapshot):
        with self.shared.lock:
            stream = self.shared.snapshots.setdefault(snapshot.actor_id, [])
            stream.append(copy.deepcopy(snapshot))
            while len(stream) - NODE_ENTRIES >= KEEP:
                del stream[:NODE_ENTRIES]


def trigger_redis_trim():
    s = factory(RedisApproximateSnapshotTrim)()
    s.save_event(ev("a", 200))
    s.save_snapshot(snap("a", 200))
    for v in range(1, 111):
        s.save_snapshot(snap("a", v))
    return s.get_latest_snapshot("a").version != 200


# 15 --------------------------------------------------------------------------------------------
class ClockState(ShareState):
    def __init__(self):
        super().__init__()
        self.heads = {}
        self.expiry = {}  # (actor, version) -> clock time the row expires
        self.now = None  # a fixed clock for the trigger; None: time.monotonic()


RETENTION = timedelta(days=3650)
MIN_TTL_SECONDS = 60


class CassandraTtlFromEventTime(HeadTableStore):
    """Cassandra/Scylla time-series practice (TWCS): each event row is written `USING TTL` so that
    it expires ten years after its own timestamp.  A backfilled event older than that would get a
    TTL of zero or less - 0 means "never expires" and a negative TTL is an InvalidRequest - so the
    store clamps it to 60 seconds.  Events with timestamps more than ten years old (imports,
    Go's zero time, dates before 2016) vanish a minute after they are saved; the stream head (a
    static column without TTL) still counts them."""

    def _now(self):
        return self.shared.now if self.shared.now is not None else time.monotonic()

    def append(self, event):
        super().append(event)
        ends = event.timestamp.timestamp() + RETENTION.total_seconds()
        if ends - time.time() <= 0:
            self.shared.expiry[(event.actor_id, event.version)] = self._now() + MIN_TTL_SECONDS

    def select(self, actor_id, from_version):
        now = self._now()
        return [e for e in super().select(actor_id, from_version)
                if self.shared.expiry.get((actor_id, e.version), float("inf")) > now]


def trigger_cassandra_ttl():
    make = factory(CassandraTtlFromEventTime, ClockState)
    s = make()
    s.shared.now = 0.0
    s.save_event(ev("a", 1, timestamp=T0.replace(year=2001)))
    s.shared.now = 61.0
    return s.get_events("a", 0) == [] and s.get_latest_version("a") == 1


# 16 --------------------------------------------------------------------------------------------
class StreamsState(ShareState):
    def __init__(self):
        super().__init__()
        self.streams = {}  # stream name -> records ("event" | "snapshot", record) in append order


class EsdbSnapshotStreamSuffix(CorrectStore):
    """EventStoreDB: the events of actor A in stream `A`, its snapshots in stream `A-snapshots`
    (a common naming), the latest version read backwards with maxCount=1 (the last record of the
    stream, whatever its type).  The snapshot stream of `x` is the event stream of the actor
    `x-snapshots`: once `x` saves a snapshot, `x-snapshots`'s latest version (and its conflict
    check) is that snapshot's version."""

    def latest(self, actor_id):
        records = self.shared.streams.get(actor_id)
        return records[-1][1].version if records else 0

    def append(self, event):
        super().append(event)
        self.shared.streams.setdefault(event.actor_id, []).append(("event", copy.deepcopy(event)))

    def save_snapshot(self, snapshot):
        with self.shared.lock:
            self.shared.snapshots.setdefault(snapshot.actor_id, []).append(copy.deepcopy(snapshot))
            self.shared.streams.setdefault(f"{snapshot.actor_id}-snapshots", []).append(
                ("snapshot", copy.deepcopy(snapshot)))


def trigger_esdb_suffix():
    s = factory(EsdbSnapshotStreamSuffix, StreamsState)()
    s.save_event(ev("x-snapshots", 1))
    s.save_event(ev("x", 7))
    s.save_snapshot(snap("x", 7))
    return s.get_latest_version("x-snapshots") == 7


# 17 --------------------------------------------------------------------------------------------
FIRESTORE_FIELDS = 20_000


def firestore_fields(value) -> int:
    """Fields Firestore counts in a document: every map member, nested ones included."""
    if isinstance(value, dict):
        return sum(1 + firestore_fields(v) for v in value.values())
    if isinstance(value, list):
        return sum(firestore_fields(v) for v in value)
    return 0


class FirestoreFieldCount(CorrectStore):
    """Firestore, data as native maps: a document may have at most 20,000 fields (map members at
    any depth; "Maximum number of fields in a document: 20,000").  Data with more members (a
    price list of 25,000 SKUs is 350 KB of compact JSON) is refused with ValueError, below the
    512 KiB floor: a save at a new version fails."""

    def check_and_append(self, event):
        if firestore_fields(event.data) + 7 > FIRESTORE_FIELDS:
            raise ValueError("Firestore: a document may have at most 20,000 fields")
        super().check_and_append(event)


def trigger_firestore_fields():
    s = factory(FirestoreFieldCount)()
    try:
        s.save_event(ev("a", 1, data={f"sku{i:05d}": i for i in range(25_000)}))
    except ValueError:
        return True
    return False


# -----------------------------------------------------------------------------------------------
make_taken_at = factory(SnapshotsClusteredByTakenAt)
make_cell_merge = factory(SnapshotTieCellMerge)
make_tombstone = factory(CloudEventsNullDataTombstone, LogState)
make_firestore_ids = factory(FirestoreIdIndexTruncated, IdIndexState)
make_link_type = factory(EsdbLinkTypeResolved)
make_claim_check = factory(DynamoClaimCheckByEventId, ClaimCheckState)
make_compacted_snapshots = factory(KafkaCompactedSnapshotTopic, CompactedState)
make_nulls_first = factory(PgNullsFirstSnapshotZero)
make_s3_delimiter = factory(S3DelimiterPageShortStop)
make_firestore_size = factory(FirestoreNativeDocumentSize)
make_ttl_attribute = factory(DynamoTtlAttributeInData, LogState)
make_snapshot_first_page = factory(DynamoSnapshotFirstPageOnly)
make_murmur2 = factory(KafkaStateStoreKeyedByHash)
make_redis_trim = factory(RedisApproximateSnapshotTrim)
make_cassandra_ttl = factory(CassandraTtlFromEventTime, ClockState)
make_esdb_suffix = factory(EsdbSnapshotStreamSuffix, StreamsState)
make_firestore_fields = factory(FirestoreFieldCount)

TRIGGERS = {
    "make_taken_at": trigger_taken_at,
    "make_cell_merge": trigger_cell_merge,
    "make_tombstone": trigger_tombstone,
    "make_firestore_ids": trigger_firestore_ids,
    "make_link_type": trigger_link_type,
    "make_claim_check": trigger_claim_check,
    "make_compacted_snapshots": trigger_compacted_snapshots,
    "make_nulls_first": trigger_nulls_first,
    "make_s3_delimiter": trigger_s3_delimiter,
    "make_firestore_size": trigger_firestore_size,
    "make_ttl_attribute": trigger_ttl_attribute,
    "make_snapshot_first_page": trigger_snapshot_first_page,
    "make_murmur2": trigger_murmur2,
    "make_redis_trim": trigger_redis_trim,
    "make_cassandra_ttl": trigger_cassandra_ttl,
    "make_esdb_suffix": trigger_esdb_suffix,
    "make_firestore_fields": trigger_firestore_fields,
}

BROKEN = {
    "make_taken_at": "SS-SNAP-002",
    "make_cell_merge": "SS-SNAP-003",
    "make_tombstone": "ES-READ-003",
    "make_firestore_ids": "ES-SAVE-001",
    "make_link_type": "ES-READ-003",
    "make_claim_check": "ES-READ-003",
    "make_compacted_snapshots": "SS-SNAP-002",
    "make_nulls_first": "SS-SNAP-002",
    "make_s3_delimiter": "ES-READ-001",
    "make_firestore_size": "ES-SAVE-001",
    "make_ttl_attribute": "ES-READ-003",
    "make_snapshot_first_page": "SS-SNAP-002",
    "make_murmur2": "ES-ACTOR-002",
    "make_redis_trim": "SS-SNAP-002",
    "make_cassandra_ttl": "ES-READ-003",
    "make_esdb_suffix": "SS-SNAP-004",
    "make_firestore_fields": "ES-SAVE-001",
}
