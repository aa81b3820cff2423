"""Stores a fourth adversarial review wrote: each breaks one MUST of docs/spec.md just outside
what the suite probed, modelled on a real backend's behaviour (the suite at spec 3.1.1 before this
review certified 22 of 23).

Each store is tests/zoo/base.py's CorrectStore broken in one place.  ``TRIGGERS`` maps each
factory name to a deterministic function that shows the bug by direct calls (True when it
shows, tests/test_zoo_escape_triggers.py); ``BROKEN`` names the requirement the real CLI must
report failed (tests/test_zoo.py); ``OUT_OF_CONTRACT`` the one whose bug the specification leaves
open, ``NOT_CAUGHT`` the one no run can reach, and why.
"""

from __future__ import annotations

import bisect
import copy
import gc
import json
import posixpath
import uuid
import weakref
import zlib
from dataclasses import replace

from aether_conformance import VersionConflictError
from tests.zoo.base import CorrectStore, ShareState, ev, factory, snap, walk
from tests.zoo.subtle import KeyedStreams


def fresh(prefix: str = "a") -> str:
    return f"{prefix}{uuid.uuid4().hex}"


def raises(call, kind=Exception) -> bool:
    try:
        call()
    except kind:
        return True
    return False


# ---------------------------------------------------------------------------------------------
class SnapshotEcsMetadataMerged(CorrectStore):
    """Snapshots in an Elasticsearch index whose document is the state itself with the Elastic
    Common Schema metadata fields `actorId` and `@timestamp` merged in at the top level (so that
    Kibana can chart them); reading strips those two fields back out.  A state that has its own
    top-level `actorId` or `@timestamp` key loses it (the envelope overwrote it)."""

    RESERVED = ("actorId", "@timestamp")

    def save_snapshot(self, snapshot):
        state = snapshot.state
        if state is not None:
            document = {**state, "actorId": snapshot.actor_id, "@timestamp": snapshot.timestamp.isoformat()}
            state = {k: v for k, v in document.items() if k not in self.RESERVED}
        super().save_snapshot(replace(snapshot, state=state))


class LogstashFieldsStripped(CorrectStore):
    """Events shipped through Logstash into Elasticsearch: Logstash adds `@version` and
    `@timestamp` to every event's top level, and the reader removes both before handing the data
    back, taking the caller's own top-level `@version`/`@timestamp` keys with them."""

    def append(self, event):
        data = event.data
        if data is not None:
            data = {k: v for k, v in {**data, "@version": "1", "@timestamp": "now"}.items()
                    if k not in ("@version", "@timestamp")}
        super().append(replace(event, data=data))


class ConflictCurrentCountsSnapshots(CorrectStore):
    """EventStoreDB-style: snapshots are written as records into the actor's own stream and
    filtered out on reads and on get_latest_version; but the conflict error's current_version is
    taken from the highest version of *any* record in the stream, snapshot records included.
    After a snapshot ahead of the events (which the seed accepts), conflicts report the snapshot's
    version."""

    def conflict(self, event, latest):
        snaps = self.shared.snapshots.get(event.actor_id) or []
        current = max([latest, *(s.version for s in snaps)])
        return VersionConflictError(actor_id=event.actor_id, attempted_version=event.version, current_version=current)


class HighWaterState(ShareState):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.high: dict[str, int] = {}


class RefusedSaveBumpsHighWater(CorrectStore):
    """Postgres in autocommit: the stream head row (`UPDATE streams SET high_water =
    GREATEST(high_water, $v)`) is written before the event insert, which the unique event-id index
    then refuses (a reused id, ES-ID-001, refused with ValueError).  The conflict check reads the
    events table, but the conflict error's current_version is read from the head row, which the
    refused save had already raised."""

    def check_and_append(self, event):
        with self.shared.lock:
            latest = self.latest(event.actor_id)
            if self.is_conflict(event, latest):
                current = max(latest, self.shared.high.get(event.actor_id, 0))
                raise VersionConflictError(actor_id=event.actor_id, attempted_version=event.version,
                                           current_version=current)
            self.shared.high[event.actor_id] = max(self.shared.high.get(event.actor_id, 0), event.version)
            if event.id in self.shared.ids:
                raise ValueError(f"event id {event.id!r} already stored")
            self.shared.ids.add(event.id)
            self.append(event)


class ProgramLimitExceeded(Exception):
    """psycopg.errors.ProgramLimitExceeded"""


class PgBtreeIndexRowSize(CorrectStore):
    """Postgres with a unique btree index on the event id: an index tuple may not exceed 2,704
    bytes *after* TOAST compression, so long ids that compress well (the suite's "f" * 4096 or
    "a" * 1024) are stored, while an incompressible id within the 1,024-character floor (1,000
    random CJK characters, 3,000 bytes) fails with 'index row size 3008 exceeds btree version 4
    maximum 2704' - a ProgramLimitExceeded, not a ValueError."""

    LIMIT = 2704

    def check_and_append(self, event):
        raw = event.id.encode()
        size = len(raw)
        if size > 2032:  # TOAST_TUPLE_THRESHOLD: only then is the value compressed
            # pglz is LZ without entropy coding: approximated by deflate with fixed Huffman codes
            deflate = zlib.compressobj(1, zlib.DEFLATED, -15, 9, zlib.Z_FIXED)
            packed = len(deflate.compress(raw) + deflate.flush())
            if packed <= size * 3 // 4:  # pglz gives up unless it saves at least a quarter
                size = packed
        if size > self.LIMIT:
            raise ProgramLimitExceeded(f"index row size {size + 8} exceeds btree version 4 maximum {self.LIMIT}")
        super().check_and_append(event)


class NumericValueOutOfRange(Exception):
    """psycopg.errors.NumericValueOutOfRange"""


class PreparedInt4FromVersion(CorrectStore):
    """A hand-rolled statement cache in front of psycopg (prepare_threshold=5): on the fifth
    execution of the read query a handle PREPAREs it server-side with the parameter types of that
    execution (psycopg dumps a Python int as int2/int4/int8 by its size) and reuses the prepared
    statement thereafter, keyed by the SQL text alone.  If the fifth read had a small
    from_version, every later read through that handle with a from_version outside int32 fails
    with 'integer out of range'."""

    def __init__(self, shared):
        super().__init__(shared)
        self.reads = 0
        self.int4 = None

    def get_events(self, actor_id, from_version):
        self.reads += 1
        if self.reads == 5:
            self.int4 = -(2**31) <= from_version < 2**31
        if self.int4 and not -(2**31) <= from_version < 2**31:
            raise NumericValueOutOfRange("integer out of range")
        return super().get_events(actor_id, from_version)


class AccessDeniedError(Exception):
    """EventStore.Client AccessDeniedException"""


class EsdbSystemStreamIds(CorrectStore):
    """EventStoreDB, one stream per actor named exactly by the actor id: streams whose name begins
    with '$' are system streams (and '$$x' is the metadata stream of 'x'), writable only by
    $admins, so saves and reads of actor ids starting with '$' fail with AccessDenied."""

    def _check(self, actor_id):
        if actor_id.startswith("$"):
            raise AccessDeniedError(f"Access to stream '{actor_id}' is denied")

    def save_event(self, event):
        self._check(event.actor_id)
        super().save_event(event)

    def get_events(self, actor_id, from_version):
        self._check(actor_id)
        return super().get_events(actor_id, from_version)

    def get_latest_version(self, actor_id):
        self._check(actor_id)
        return super().get_latest_version(actor_id)


class CrossSlotError(Exception):
    """redis.exceptions.ResponseError: CROSSSLOT"""


class RedisClusterEmptyHashTag(CorrectStore):
    """Redis Cluster: a Lua script appends to `events:{<id>}` and sets `latest:{<id>}`, the hash
    tag keeping both keys in one slot.  But Redis hashes the whole key when the first '{' is
    immediately followed by '}', so for an id starting with '}' the two keys land in different
    slots and the script fails with CROSSSLOT.  (The empty id is refused up front with
    ValueError, which ES-ACTOR-003 allows.)"""

    def _check(self, actor_id):
        if actor_id == "":
            raise ValueError("empty actor id")
        if actor_id.startswith("}"):
            raise CrossSlotError("CROSSSLOT Keys in request don't hash to the same slot")

    def save_event(self, event):
        self._check(event.actor_id)
        super().save_event(event)


class OsPathJoinAbsoluteIds(KeyedStreams):
    """One file per actor at os.path.join(ROOT, actor_id) (with '/' in ids kept as subdirectories
    and '.'/'..' segments escaped): os.path.join discards ROOT when the id is itself an absolute
    path, so the id '/var/lib/aether/streams/x' opens the same file as the id 'x'."""

    ROOT = "/var/lib/aether/streams"

    def key(self, actor_id):
        return posixpath.join(self.ROOT, actor_id)


class StreamReaderBomStripped(CorrectStore):
    """A .NET service keeps one tab-separated log file per actor whose lines start with the event
    id, and reads it with new StreamReader(path) (detectEncodingFromByteOrderMarks = true): a
    U+FEFF at the very start of the file is taken for a byte order mark and dropped, so the first
    event of a stream whose id begins with U+FEFF comes back without it."""

    def select(self, actor_id, from_version):
        stream = self.shared.events.get(actor_id, [])
        out = []
        for index, event in enumerate(stream):
            if event.version >= from_version:
                event = copy.deepcopy(event)
                if index == 0 and event.id.startswith("\ufeff"):
                    event = replace(event, id=event.id[1:])
                out.append(event)
        return out


class EtcdRequestTooLarge(Exception):
    """etcdserver: request is too large (gRPC ResourceExhausted)"""


def _encoded(record) -> int:
    return len(json.dumps(record.to_dict(), separators=(",", ":"), ensure_ascii=False).encode())


class EtcdMaxRequestBytes(CorrectStore):
    """etcd with the default --max-request-bytes of 1.5 MiB: a Put of an event (or snapshot) whose
    encoding exceeds it fails with gRPC ResourceExhausted 'request is too large' - a refusal the
    store never turns into a ValueError.  The suite's largest single inputs are 1 MiB."""

    LIMIT = 1536 * 1024

    def save_event(self, event):
        if _encoded(event) > self.LIMIT:
            raise EtcdRequestTooLarge("etcdserver: request is too large")
        super().save_event(event)

    def save_snapshot(self, snapshot):
        if _encoded(snapshot) > self.LIMIT:
            raise EtcdRequestTooLarge("etcdserver: request is too large")
        super().save_snapshot(snapshot)


class IllegalArgumentException(Exception):
    """Elasticsearch: Document contains at least one immense term"""


class ElasticImmenseTerm(CorrectStore):
    """Events in Elasticsearch with id, eventType and commandId mapped as `keyword`: Lucene refuses
    a term over 32,766 bytes ('Document contains at least one immense term in field'), an
    IllegalArgumentException the store passes through.  The suite's longest fields are 4,096
    characters."""

    def save_event(self, event):
        for name in ("id", "event_type", "command_id"):
            if len(getattr(event, name).encode()) > 32766:
                raise IllegalArgumentException(f"Document contains at least one immense term in field=\"{name}\"")
        super().save_event(event)


class SqliteJson15DigitsState(CorrectStore):
    """Snapshots in SQLite, the state minified on the way in with `json(?)`: SQLite's JSON
    functions render REAL values with 15 significant digits (%!.15g), so a float that needs 16 or
    17 digits comes back as a different float (0.1, 9.99, 5e-324 and integers survive).  Events
    are stored as the caller's text, untouched."""

    def save_snapshot(self, snapshot):
        def leaf(value):
            if isinstance(value, float):
                return float("%.15g" % value)
            return value
        super().save_snapshot(replace(snapshot, state=walk(snapshot.state, leaf)))


class RubyArgumentError(Exception):
    """ArgumentError: can't get const"""


class RubyJsonLoadAdditions(CorrectStore):
    """A Ruby service reads stored events with JSON.load, which has create_additions enabled: any
    object with a `json_class` key is handed to that class's json_create, and a class name that is
    not defined raises ArgumentError - reading the actor's events fails."""

    def select(self, actor_id, from_version):
        events = super().select(actor_id, from_version)

        def check(value):
            if isinstance(value, dict):
                if "json_class" in value:
                    raise RubyArgumentError(f"can't get const {value['json_class']}")
                for item in value.values():
                    check(item)
            elif isinstance(value, list):
                for item in value:
                    check(item)
        for event in events:
            check(event.data)
        return events


class OffsetState(ShareState):
    def __init__(self):
        super().__init__()
        self.offsets: dict[tuple[str, int], int] = {}


class SnapshotOffsetSeek(CorrectStore):
    """A Kafka-Streams-style store: each snapshot records the log offset at which its actor's
    events resume (bisect of the stream at save time), and get_events(actor, v) for a v equal to a
    snapshot's version seeks to that offset instead of scanning.  For a snapshot saved ahead of
    the events (which the seed accepts), the recorded offset is the end of the stream at that
    time, so a later read from that version returns the events appended in between."""

    def save_snapshot(self, snapshot):
        with self.shared.lock:
            stream = [e.version for e in self.shared.events.get(snapshot.actor_id, [])]
            self.shared.offsets[(snapshot.actor_id, snapshot.version)] = bisect.bisect_left(stream, snapshot.version)
        super().save_snapshot(snapshot)

    def select(self, actor_id, from_version):
        offset = self.shared.offsets.get((actor_id, from_version))
        if offset is None:
            return super().select(actor_id, from_version)
        return [copy.deepcopy(e) for e in self.shared.events.get(actor_id, [])[offset:]]


class HandleCountState(ShareState):
    def __init__(self):
        super().__init__()
        self.open = 0


def shared_cache_memory_factory():
    """SQLite `file:aether?mode=memory&cache=shared`: the in-memory database lives while at least
    one connection is open, and is discarded when the last one closes."""
    shared = HandleCountState()

    def closed():
        with shared.lock:
            shared.open -= 1
            if shared.open == 0:
                shared.events.clear()
                shared.snapshots.clear()

    def make():
        handle = SharedCacheMemoryDb(shared)
        with shared.lock:
            shared.open += 1
        weakref.finalize(handle, closed)
        return handle

    make.__name__ = "make_SharedCacheMemoryDb"
    return make


class SharedCacheMemoryDb(CorrectStore):
    """SQLite shared-cache in-memory database, one connection per handle: when every handle has
    been dropped (the last connection closed), the database is gone; the next handle of the same
    factory opens an empty one."""


class JsObjectSnapshotIndex(CorrectStore):
    """A Node.js backend keeps events in a Map, but its snapshot index is a plain object:
    `(index[actorId] ??= {list: []}).list.push(s)`.  For 'constructor', 'toString', '__proto__'
    and the other Object.prototype names `??=` finds the inherited member, `.list` is undefined
    and the push throws TypeError: snapshots of those actors cannot be saved."""

    PROTO = {"constructor", "__proto__", "toString", "hasOwnProperty", "valueOf", "isPrototypeOf",
             "propertyIsEnumerable", "toLocaleString", "__defineGetter__", "__defineSetter__",
             "__lookupGetter__", "__lookupSetter__"}

    def save_snapshot(self, snapshot):
        if snapshot.actor_id in self.PROTO:
            raise TypeError("Cannot read properties of undefined (reading 'push')")
        super().save_snapshot(snapshot)


class MsgpackMaxStrLen(CorrectStore):
    """Events packed with msgpack-python 0.6, whose unpackb defaults to max_str_len = 1 MiB: an
    event with a string over 1,048,576 characters is accepted (packing has no limit) and then
    cannot be read back - unpackb raises ValueError('... exceeds max_str_len(1048576)') on every
    read of the actor."""

    def select(self, actor_id, from_version):
        events = super().select(actor_id, from_version)

        def check(value):
            if isinstance(value, str) and len(value.encode()) > 1048576:
                raise ValueError(f"{len(value.encode())} exceeds max_str_len(1048576)")
            if isinstance(value, dict):
                for k, v in value.items():
                    check(k)
                    check(v)
            elif isinstance(value, list):
                for v in value:
                    check(v)
        for event in events:
            check(event.data)
        return events


class SqlServerParameterLimit(Exception):
    """pyodbc.ProgrammingError: The incoming request has too many parameters (8003)"""


class SqlServer2100Params(CorrectStore):
    """SQL Server behind a two-step reader: the matching versions come from a covering index, then
    the rows are fetched with `WHERE actor_id = @a AND version IN (@p1, ..., @pN)`.  SQL Server
    allows 2,100 parameters per request, so a read that matches more than 2,099 events fails with
    error 8003.  The quick profile's longest stream is 1,050 events."""

    def select(self, actor_id, from_version):
        events = super().select(actor_id, from_version)
        if len(events) + 1 > 2100:
            raise SqlServerParameterLimit("The incoming request has too many parameters. The server supports a "
                                          "maximum of 2100 parameters.")
        return events


class ShardState(ShareState):
    def __init__(self):
        super().__init__()
        self.indices: set[str] = set()


class ValidationException(Exception):
    """Elasticsearch validation_exception"""


class ElasticMaxShardsPerNode(CorrectStore):
    """One Elasticsearch index per actor (one primary shard, no replica) on a single-node cluster
    with the default cluster.max_shards_per_node of 1,000: once 1,000 actors exist, the first save
    to a new actor fails to create its index with 'this action would add [1] total shards, but this
    cluster currently has [1000]/[1000] maximum shards open'."""

    def check_and_append(self, event):
        with self.shared.lock:
            if event.actor_id not in self.shared.indices:
                if len(self.shared.indices) >= 1000 and not self.is_conflict(event, 0):
                    raise ValidationException("this action would add [1] total shards, but this cluster currently "
                                              "has [1000]/[1000] maximum shards open")
        super().check_and_append(event)
        with self.shared.lock:
            self.shared.indices.add(event.actor_id)


class TypeState(ShareState):
    def __init__(self):
        super().__init__()
        self.types: dict[str, int] = {}


class EventTypeTinyint(CorrectStore):
    """MySQL: event types normalised into a lookup table `event_types(id TINYINT UNSIGNED
    AUTO_INCREMENT, name VARCHAR(1024) UNIQUE)`: the 256th distinct event type cannot get an id
    ('Duplicate entry '255' for key PRIMARY' once AUTO_INCREMENT is exhausted) and the save fails
    with an IntegrityError."""

    def check_and_append(self, event):
        with self.shared.lock:
            if event.event_type not in self.shared.types:
                if len(self.shared.types) >= 255:
                    raise RuntimeError("(1062, \"Duplicate entry '255' for key 'event_types.PRIMARY'\")")
                self.shared.types[event.event_type] = len(self.shared.types) + 1
        super().check_and_append(event)


class DataError(Exception):
    """MySQLdb.DataError (1406, "Data too long for column 'actor_id' at row 1")"""


class SnapshotActorVarchar256(CorrectStore):
    """MySQL in strict mode: the events table's actor column is TEXT (long ids are accepted and
    work), but the snapshots table keys on `actor_id VARCHAR(256)`, so a snapshot of an actor whose
    id is longer than 256 characters fails with DataError 1406 'Data too long' - for an id the
    store accepted."""

    def save_snapshot(self, snapshot):
        if len(snapshot.actor_id) > 256:
            raise DataError("(1406, \"Data too long for column 'actor_id' at row 1\")")
        super().save_snapshot(snapshot)


class DynamoValidationException(Exception):
    """botocore ClientError ValidationException"""


class DynamoSnapshotEmptyKey(CorrectStore):
    """Snapshots in DynamoDB keyed by actor id (events elsewhere accept any id, the empty one
    included): DynamoDB refuses empty strings in key attributes, so a snapshot of the actor ''
    fails with a ValidationException ('One or more parameter values are not valid. The AttributeValue
    for a key attribute cannot contain an empty string value'), and reading it fails the same way."""

    def save_snapshot(self, snapshot):
        if snapshot.actor_id == "":
            raise DynamoValidationException("The AttributeValue for a key attribute cannot contain an empty string value")
        super().save_snapshot(snapshot)

    def get_latest_snapshot(self, actor_id):
        if actor_id == "":
            raise DynamoValidationException("The AttributeValue for a key attribute cannot contain an empty string value")
        return super().get_latest_snapshot(actor_id)


# ---------------------------------------------------------------------------------------------
make_snapshot_ecs_metadata_merged = factory(SnapshotEcsMetadataMerged)
make_logstash_fields_stripped = factory(LogstashFieldsStripped)
make_conflict_current_counts_snapshots = factory(ConflictCurrentCountsSnapshots)
make_refused_save_bumps_high_water = factory(RefusedSaveBumpsHighWater, HighWaterState)
make_pg_btree_index_row_size = factory(PgBtreeIndexRowSize)
make_prepared_int4_from_version = factory(PreparedInt4FromVersion)
make_esdb_system_stream_ids = factory(EsdbSystemStreamIds)
make_redis_cluster_empty_hash_tag = factory(RedisClusterEmptyHashTag)
make_os_path_join_absolute_ids = factory(OsPathJoinAbsoluteIds)
make_stream_reader_bom_stripped = factory(StreamReaderBomStripped)
make_etcd_max_request_bytes = factory(EtcdMaxRequestBytes)
make_elastic_immense_term = factory(ElasticImmenseTerm)
make_sqlite_json_15_digits_state = factory(SqliteJson15DigitsState)
make_ruby_json_load_additions = factory(RubyJsonLoadAdditions)
make_snapshot_offset_seek = factory(SnapshotOffsetSeek, OffsetState)
make_shared_cache_memory_db = shared_cache_memory_factory()
make_js_object_snapshot_index = factory(JsObjectSnapshotIndex)
make_msgpack_max_str_len = factory(MsgpackMaxStrLen)
make_sql_server_2100_params = factory(SqlServer2100Params)
make_elastic_max_shards_per_node = factory(ElasticMaxShardsPerNode, ShardState)
make_event_type_tinyint = factory(EventTypeTinyint, TypeState)
make_snapshot_actor_varchar_256 = factory(SnapshotActorVarchar256)
make_dynamo_snapshot_empty_key = factory(DynamoSnapshotEmptyKey)


# ---------------------------------------------------------------------------------------------
def _t_ecs():
    s, a = make_snapshot_ecs_metadata_merged(), fresh()
    s.save_event(ev(a, 1))
    s.save_snapshot(snap(a, 1, state={"actorId": "owner-7", "n": 1}))
    return s.get_latest_snapshot(a).state != {"actorId": "owner-7", "n": 1}


def _t_logstash():
    s, a = make_logstash_fields_stripped(), fresh()
    s.save_event(ev(a, 1, data={"@version": 3, "x": 1}))
    return s.get_events(a, 0)[0].data != {"@version": 3, "x": 1}


def _t_conflict_snap():
    s, a = make_conflict_current_counts_snapshots(), fresh()
    s.save_event(ev(a, 1))
    s.save_snapshot(snap(a, 9))
    try:
        s.save_event(ev(a, 1))
    except VersionConflictError as error:
        return error.current_version != 1
    return True


def _t_high_water():
    s, a = make_refused_save_bumps_high_water(), fresh()
    first = ev(a, 1)
    s.save_event(first)
    if not raises(lambda: s.save_event(ev(a, 2, id=first.id)), ValueError):
        return False
    try:
        s.save_event(ev(a, 1))
    except VersionConflictError as error:
        return error.current_version != 1
    return True


def _t_btree():
    import random
    rng = random.Random(4)
    ident = "".join(chr(rng.randrange(0x20000, 0x2A6DF)) for _ in range(1000))
    s, a = make_pg_btree_index_row_size(), fresh()
    return raises(lambda: s.save_event(ev(a, 1, id=ident)))


def _t_int4():
    s, a = make_prepared_int4_from_version(), fresh()
    s.save_event(ev(a, 2**40))
    for v in range(5):
        s.get_events(a, v)
    return raises(lambda: s.get_events(a, 2**40))


def _t_esdb():
    s = make_esdb_system_stream_ids()
    return raises(lambda: s.save_event(ev(fresh("$orders-"), 1)))


def _t_crossslot():
    s = make_redis_cluster_empty_hash_tag()
    return raises(lambda: s.save_event(ev(fresh("}"), 1)))


def _t_abs_path():
    s, a = make_os_path_join_absolute_ids(), fresh()
    s.save_event(ev(a, 1))
    return s.get_latest_version("/var/lib/aether/streams/" + a) != 0


def _t_bom():
    s, a = make_stream_reader_bom_stripped(), fresh()
    e = ev(a, 1, id="\ufeff" + uuid.uuid4().hex)
    s.save_event(e)
    return s.get_events(a, 0)[0].id != e.id


def _t_etcd():
    s, a = make_etcd_max_request_bytes(), fresh()
    try:
        s.save_event(ev(a, 1, data={"blob": "x" * (2 * 1024 * 1024)}))
    except ValueError:
        return False
    except Exception:
        return True
    return False


def _t_immense():
    s, a = make_elastic_immense_term(), fresh()
    try:
        s.save_event(ev(a, 1, event_type="t" * 40000))
    except ValueError:
        return False
    except Exception:
        return True
    return False


def _t_sqlite15():
    s, a = make_sqlite_json_15_digits_state(), fresh()
    s.save_event(ev(a, 1))
    s.save_snapshot(snap(a, 1, state={"x": 0.1 + 0.2}))
    return s.get_latest_snapshot(a).state["x"] != 0.1 + 0.2


def _t_ruby():
    s, a = make_ruby_json_load_additions(), fresh()
    s.save_event(ev(a, 1, data={"item": {"json_class": "Book", "title": "x"}}))
    return raises(lambda: s.get_events(a, 0))


def _t_offset():
    s, a = make_snapshot_offset_seek(), fresh()
    s.save_event(ev(a, 1))
    s.save_snapshot(snap(a, 9))
    for v in range(2, 10):
        s.save_event(ev(a, v))
    return [e.version for e in s.get_events(a, 9)] != [9]


def _t_shared_cache():
    make = make_shared_cache_memory_db
    a = fresh()
    h = make()
    h.save_event(ev(a, 1))
    del h
    gc.collect()
    return make().get_latest_version(a) != 1


def _t_js_snapshots():
    s = make_js_object_snapshot_index()
    s.save_event(ev("constructor", 10**12 + 1)) if s.get_latest_version("constructor") == 0 else None
    return raises(lambda: s.save_snapshot(snap("constructor", 1)), TypeError)


def _t_msgpack():
    s, a = make_msgpack_max_str_len(), fresh()
    s.save_event(ev(a, 1, data={"blob": "x" * (1024 * 1024 + 1)}))
    return raises(lambda: s.get_events(a, 0))


def _t_2100():
    s, a = make_sql_server_2100_params(), fresh()
    for v in range(1, 2101):
        s.save_event(ev(a, v))
    return raises(lambda: s.get_events(a, 0))


def _t_shards():
    s = make_elastic_max_shards_per_node()
    for _ in range(1000):
        s.save_event(ev(fresh(), 1))
    return raises(lambda: s.save_event(ev(fresh(), 1)))


def _t_tinyint():
    s, a = make_event_type_tinyint(), fresh()
    for v in range(1, 256):
        s.save_event(ev(a, v, event_type=f"Type{v}"))
    return raises(lambda: s.save_event(ev(a, 256, event_type="Type256")))


def _t_varchar256():
    s, a = make_snapshot_actor_varchar_256(), "y" * 300 + fresh()
    s.save_event(ev(a, 1))
    return raises(lambda: s.save_snapshot(snap(a, 1)))


def _t_dynamo_empty():
    s = make_dynamo_snapshot_empty_key()
    s.save_event(ev("", s.get_latest_version("") + 1))
    return raises(lambda: s.save_snapshot(snap("", 1)))


TRIGGERS = {
    "make_snapshot_ecs_metadata_merged": _t_ecs,
    "make_logstash_fields_stripped": _t_logstash,
    "make_conflict_current_counts_snapshots": _t_conflict_snap,
    "make_refused_save_bumps_high_water": _t_high_water,
    "make_pg_btree_index_row_size": _t_btree,
    "make_prepared_int4_from_version": _t_int4,
    "make_esdb_system_stream_ids": _t_esdb,
    "make_redis_cluster_empty_hash_tag": _t_crossslot,
    "make_os_path_join_absolute_ids": _t_abs_path,
    "make_stream_reader_bom_stripped": _t_bom,
    "make_etcd_max_request_bytes": _t_etcd,
    "make_elastic_immense_term": _t_immense,
    "make_sqlite_json_15_digits_state": _t_sqlite15,
    "make_ruby_json_load_additions": _t_ruby,
    "make_snapshot_offset_seek": _t_offset,
    "make_shared_cache_memory_db": _t_shared_cache,
    "make_js_object_snapshot_index": _t_js_snapshots,
    "make_msgpack_max_str_len": _t_msgpack,
    "make_sql_server_2100_params": _t_2100,
    "make_elastic_max_shards_per_node": _t_shards,
    "make_event_type_tinyint": _t_tinyint,
    "make_snapshot_actor_varchar_256": _t_varchar256,
    "make_dynamo_snapshot_empty_key": _t_dynamo_empty,
}

BROKEN = {
    "make_snapshot_ecs_metadata_merged": "SS-SNAP-003",
    "make_logstash_fields_stripped": "ES-READ-003",
    "make_conflict_current_counts_snapshots": "SS-SNAP-004",
    "make_refused_save_bumps_high_water": "ES-REFUSE-001",
    "make_pg_btree_index_row_size": "ES-READ-003",
    "make_prepared_int4_from_version": "ES-READ-001",
    "make_esdb_system_stream_ids": "ES-ACTOR-002",
    "make_redis_cluster_empty_hash_tag": "ES-ACTOR-002",
    "make_stream_reader_bom_stripped": "ES-READ-003",
    "make_etcd_max_request_bytes": "ES-REFUSE-001",
    "make_elastic_immense_term": "ES-REFUSE-001",
    "make_sqlite_json_15_digits_state": "SS-SNAP-003",
    "make_ruby_json_load_additions": "ES-READ-003",
    "make_snapshot_offset_seek": "SS-SNAP-004",
    "make_js_object_snapshot_index": "SS-SNAP-003",
    "make_msgpack_max_str_len": "ES-READ-003",
    "make_sql_server_2100_params": "ES-READ-001",
    "make_elastic_max_shards_per_node": "ES-SAVE-001",
    "make_event_type_tinyint": "ES-SAVE-001",
    "make_snapshot_actor_varchar_256": "ES-REFUSE-001",
    "make_dynamo_snapshot_empty_key": "ES-REFUSE-001",
}

# Its data is dropped when the last handle closes, which the specification leaves open (section 6:
# an in-memory store ends with its last handle, as the seed's served over aether-store/1 does).
OUT_OF_CONTRACT = {
    "make_shared_cache_memory_db": "ES-HANDLE-001",
}

# Stores no run can catch, and why (each still shows its bug at its trigger).
NOT_CAUGHT = {
    # An absolute id lands on the relative id ROOT + its tail; the collision needs the store's own
    # ROOT, which no test can know (an absolute id alone, as EXACT_IDS' absolute-path, is kept).
    "make_os_path_join_absolute_ids": "ES-ACTOR-002",
}
