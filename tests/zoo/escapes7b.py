"""Stores a seventh adversarial review (b) wrote, modelled on documented behaviour of log, stream and
key-value backends (NATS JetStream, Kafka, Redis, EventStoreDB, S3/GCS) and the snapshot stores
beside them: bugs just outside the values, sizes, orders and ids the suite already uses.

Each store is tests/zoo/base.py's CorrectStore broken in one place.  ``TRIGGERS`` maps each factory
name to a deterministic function showing the bug by direct calls (True when it shows); ``BROKEN``
names the MUST requirement each one breaks.

Against the CLI (default profile) as of this review, 8 of the 9 were certified CONFORMANT; only
``make_command_msg_id`` was caught (ES-SAVE-001: two actors saved at version 1 with one command id).
``make_compacted_command_id`` was caught by the thorough profile only.  The suite now flags 8:
one state saved at two versions, a save retried through a handle that read before it landed,
versions 10^16 - 1 and 10^16, and planted at the start of the run for its end: a snapshot with a
null state (default profile), an event id reused by another actor and one command's events.
Later, ``make_esdb_idempotent`` too: two handles save one version of an actor at once with one event
id and different data, in 16 rounds (it was the one no run reached).
"""

from __future__ import annotations

import copy
import hashlib
import json
import time

from tests.zoo.base import CorrectStore, ShareState, ev, factory, snap


def _json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# 1 ---------------------------------------------------------------------------------------------
class ContentAddressedState(ShareState):
    def __init__(self):
        super().__init__()
        # snapshots/<actor>/<sha256 of the state> -> the object (its user metadata holds the version)
        self.objects: dict[str, dict[str, object]] = {}


class S3ContentAddressedSnapshots(CorrectStore):
    """S3/GCS: snapshots stored content-addressed at `snapshots/<actor>/<sha256 of the state JSON>`, so
    that an unchanged state is not uploaded twice (a long-lived actor whose later events do not touch
    the snapshotted state, a stateless actor whose state stays {} or null); the version and the time
    taken ride in the object's user metadata (x-amz-meta-version).  The latest is found by listing the
    actor's prefix and taking the highest x-amz-meta-version.  A PUT replaces the object whole: a
    lagging snapshotter that saves the same state at a lower version after a higher one rewrites the
    metadata, and the higher snapshot is gone."""

    def save_snapshot(self, snapshot):
        with self.shared.lock:
            key = hashlib.sha256(_json(snapshot.state).encode()).hexdigest()
            self.shared.objects.setdefault(snapshot.actor_id, {})[key] = copy.deepcopy(snapshot)

    def get_latest_snapshot(self, actor_id):
        with self.shared.lock:
            objects = self.shared.objects.get(actor_id)
            return copy.deepcopy(max(objects.values(), key=lambda s: s.version)) if objects else None


def trigger_content_addressed():
    s = factory(S3ContentAddressedSnapshots, ContentAddressedState)()
    for v in range(1, 9):
        s.save_event(ev("a", v))
    s.save_snapshot(snap("a", 8, state={"balance": 0}))
    s.save_snapshot(snap("a", 5, state={"balance": 0}))
    return s.get_latest_snapshot("a").version == 5


# 2 ---------------------------------------------------------------------------------------------
DUPLICATE_WINDOW = 120.0  # seconds: JetStream's default duplicate_window


class MsgIdState(ShareState):
    def __init__(self):
        super().__init__()
        self.msg_ids: dict[str, float] = {}  # Nats-Msg-Id -> when it was stored (one table per stream)


class JetStreamCommandVersionMsgId(CorrectStore):
    """NATS JetStream: every event of every actor on one stream (`events.<actor token>`), appended
    with Nats-Expected-Last-Subject-Sequence, and - for exactly-once command handling - with
    `Nats-Msg-Id: <command id>:<version>` when the event has a command id (a retried command
    re-emits the same events at the same versions, and JetStream drops the copy).  The duplicate
    table is per *stream*, not per subject, and the server consults it before the expected-sequence
    check; the store turns a PubAck with duplicate=true into a VersionConflictError ("this version
    is already taken").  One command that emits an event on each of two actors at the same version
    (a transfer: debit account A v3, credit account B v3) within the 2-minute window: the second
    actor's save conflicts although its latest is below."""

    def check_and_append(self, event):
        with self.shared.lock:
            now = time.monotonic()
            latest = self.latest(event.actor_id)
            msg_id = f"{event.command_id}:{event.version}" if event.command_id else None
            if msg_id is not None and now - self.shared.msg_ids.get(msg_id, -1e18) < DUPLICATE_WINDOW:
                raise self.conflict(event, latest)
            if self.is_conflict(event, latest):
                raise self.conflict(event, latest)
            self.append(event)
            if msg_id is not None:
                self.shared.msg_ids[msg_id] = now


def trigger_command_msg_id():
    s = factory(JetStreamCommandVersionMsgId, MsgIdState)()
    s.save_event(ev("account-a", 1, command_id="transfer-7"))
    try:
        s.save_event(ev("account-b", 1, command_id="transfer-7"))
    except Exception:
        return True
    return False


# 3 ---------------------------------------------------------------------------------------------
class EsdbIdempotentAppend(CorrectStore):
    """EventStoreDB: one stream per actor; a save reads the stream's last revision (and the version
    in its metadata), checks the version against it, then appends with that expected revision, so
    the server makes check-and-append atomic.  Event ids become the ESDB event UUIDs (uuid5 of the
    id).  ESDB's documented idempotence: when the expected revision is stale but the event *at the
    next position* has the same event id, the append is treated as a repeat and answered with
    success, nothing written.  Two writers that save one event id at one version at once (two
    instances handling one command, with event ids derived from the command) are both
    acknowledged; only the first one's content is stored."""

    def begin(self, event):
        """The read half of a save: the revision the append will expect (a round trip)."""
        with self.shared.lock:
            stream = self.shared.events.get(event.actor_id, [])
            latest = stream[-1].version if stream else 0
            if event.version <= latest:
                raise self.conflict(event, latest)
            return len(stream)

    def finish(self, event, expected):
        """The append with ExpectedRevision = expected (the server's atomic check)."""
        with self.shared.lock:
            stream = self.shared.events.get(event.actor_id, [])
            if len(stream) != expected:
                if len(stream) > expected and stream[expected].id == event.id:
                    return True  # idempotent repeat: success, nothing written
                return False  # WrongExpectedVersion: read again (and conflict if the version is taken)
            self.append(event)
            return True

    def check_and_append(self, event):
        while True:
            expected = self.begin(event)
            time.sleep(0.0005)  # the gRPC round trip between the read and the append
            if self.finish(event, expected):
                return


def trigger_esdb_idempotent():
    s = factory(EsdbIdempotentAppend)()
    s.save_event(ev("a", 1))
    first = ev("a", 2, id="cmd-9/0", data={"by": "node-1"})
    second = ev("a", 2, id="cmd-9/0", data={"by": "node-2"})
    e1, e2 = s.begin(first), s.begin(second)
    s.finish(first, e1)
    # A correct store answers WrongExpectedVersion, reads again and raises VersionConflictError.
    return s.finish(second, e2) is True and s.get_events("a", 2)[0].data == {"by": "node-1"}


# 4 ---------------------------------------------------------------------------------------------
class SnapshotLogState(ShareState):
    def __init__(self):
        super().__init__()
        self.records = 0  # records appended to the snapshot topic
        self.offsets = {}  # id(snapshot record) -> its offset


SNAPSHOT_TOMBSTONE_RETENTION = 10_000  # records (delete.retention, counted in records here)


class KafkaNullStateSnapshotTombstone(CorrectStore):
    """Kafka: snapshots on a compacted topic keyed `<actor>/<version>` (every version its own key, so
    compaction never drops a higher one), CloudEvents binary mode: version and time in `ce_*`
    headers, the record value the state alone.  A snapshot whose state is null (an actor whose
    state is a nil map) is a null value - a tombstone - and the log cleaner removes tombstones once
    delete.retention has passed (here 10,000 records behind the log end, checked every 1,024
    appends).  The actor's highest snapshot vanishes some time after it was saved: the latest read
    then returns a lower one, or None."""

    def save_snapshot(self, snapshot):
        with self.shared.lock:
            shared = self.shared
            record = copy.deepcopy(snapshot)
            shared.snapshots.setdefault(snapshot.actor_id, []).append(record)
            shared.records += 1
            shared.offsets[id(record)] = shared.records
            if shared.records % 1024 == 0:
                horizon = shared.records - SNAPSHOT_TOMBSTONE_RETENTION
                for rows in shared.snapshots.values():
                    rows[:] = [r for r in rows if r.state is not None or shared.offsets[id(r)] > horizon]


def trigger_snapshot_tombstone():
    s = factory(KafkaNullStateSnapshotTombstone, SnapshotLogState)()
    s.save_event(ev("a", 1))
    s.save_snapshot(snap("a", 1, state=None))
    for i in range(SNAPSHOT_TOMBSTONE_RETENTION + 1024):
        s.save_snapshot(snap(f"o{i}", 1))
    return s.get_latest_snapshot("a") is None


# 5 ---------------------------------------------------------------------------------------------
class KeyedLogState(ShareState):
    def __init__(self):
        super().__init__()
        self.log = []  # (offset, key, event): the topic's records, in offset order
        self.offset = 0
        self.heads = {}  # the stream-head table the check and get_latest_version read


COMPACTION_LAG = 10_000  # records behind the log end before the cleaner touches them (closed segments)


class KafkaCompactedByEventId(CorrectStore):
    """Kafka: all events on one compacted topic (cleanup.policy=compact, so history is kept forever
    with no time retention), the record *key* being the event id - "a replayed or retried publish of
    the same event collapses to one record".  Readers scan the actor's records; the stream head
    (latest version, what the check reads) is a table of its own.  Compaction keeps the last record
    per key once its segment is closed (here: records 10,000 behind the log end, cleaned every 1,024
    appends): an event id used again - by another actor, or by the same actor at a later version,
    both of which ES-ID-001 lets a store accept - makes the earlier event vanish some time later."""

    def latest(self, actor_id):
        return self.shared.heads.get(actor_id, 0)

    def key(self, event):
        return event.id

    def append(self, event):
        shared = self.shared
        shared.offset += 1
        shared.log.append((shared.offset, self.key(event), copy.deepcopy(event)))
        shared.heads[event.actor_id] = event.version
        if shared.offset % 1024 == 0:
            horizon = shared.offset - COMPACTION_LAG
            last = {}
            for offset, key, _ in shared.log:
                last[key] = offset
            shared.log[:] = [r for r in shared.log if r[0] > horizon or last[r[1]] == r[0]]

    def select(self, actor_id, from_version):
        return [copy.deepcopy(e) for _, _, e in self.shared.log if e.actor_id == actor_id and e.version >= from_version]


def trigger_compacted_event_id():
    s = factory(KafkaCompactedByEventId, KeyedLogState)()
    s.save_event(ev("a", 1, id="evt-1"))
    s.save_event(ev("b", 1, id="evt-1"))
    for i in range(COMPACTION_LAG + 1024):
        s.save_event(ev(f"o{i}", 1))
    return s.get_events("a", 0) == [] and s.get_latest_version("a") == 1


# 6 ---------------------------------------------------------------------------------------------
class EsdbRevisionHintIdempotentResave(EsdbIdempotentAppend):
    """EventStoreDB again (store 3's append), with the usual saving of a round trip: each client
    remembers the last revision (and version) it saw per stream - its own appends and reads - and
    appends with that as the expected revision, reading first only when it has no hint or the
    version is not above the hinted one.  A stale hint is harmless by design (WrongExpectedVersion,
    read, retry) - except for ESDB's idempotence: the same event saved again through a client whose
    hint predates it (a request retried on another node after a timeout) meets its own id at the
    next position and is answered with success, where the version is taken and the save must
    conflict."""

    def __init__(self, shared):
        super().__init__(shared)
        self.hint = {}  # actor -> (revision count, latest version) last seen by this client

    def _remember(self, actor_id):
        stream = self.shared.events.get(actor_id, [])
        self.hint[actor_id] = (len(stream), stream[-1].version if stream else 0)

    def check_and_append(self, event):
        hinted = self.hint.get(event.actor_id)
        if hinted is not None and event.version > hinted[1]:
            if self.finish(event, hinted[0]):
                with self.shared.lock:
                    self._remember(event.actor_id)
                return
        super().check_and_append(event)
        with self.shared.lock:
            self._remember(event.actor_id)

    def get_events(self, actor_id, from_version):
        with self.shared.lock:
            self._remember(actor_id)
            return self.select(actor_id, from_version)

    def get_latest_version(self, actor_id):
        with self.shared.lock:
            self._remember(actor_id)
            return self.latest(actor_id)


def trigger_esdb_hint():
    make = factory(EsdbRevisionHintIdempotentResave)
    node1, node2 = make(), make()
    node1.save_event(ev("a", 1))
    node2.get_events("a", 0)  # node2 remembers revision 0, version 1
    event = ev("a", 2)
    node1.save_event(event)
    try:
        node2.save_event(event)  # version 2 is taken: VersionConflictError expected
    except Exception:
        return False
    return True


# 7 ---------------------------------------------------------------------------------------------
class KafkaCompactedByCommandId(KafkaCompactedByEventId):
    """Store 5 with the record key an exactly-once producer uses: `<actor>/<command id>` (the
    idempotency key of the command that emitted the event; the event id when it has none), so that
    a command retried after a lost acknowledgement collapses to one record.  A command that emits
    several events on one actor (ES-SAVE-001: each is stored) keeps only its last once compaction
    reaches them - the earlier events vanish some time after the save, the head still counting
    them."""

    def key(self, event):
        return f"{event.actor_id}/{event.command_id}" if event.command_id else f"{event.actor_id}#{event.id}"


def trigger_compacted_command_id():
    s = factory(KafkaCompactedByCommandId, KeyedLogState)()
    s.save_event(ev("cart", 1, command_id="add-items"))
    s.save_event(ev("cart", 2, command_id="add-items"))
    for i in range(COMPACTION_LAG + 1024):
        s.save_event(ev(f"o{i}", 1))
    return [e.version for e in s.get_events("cart", 0)] == [2]


# 8 ---------------------------------------------------------------------------------------------
def _zset_order(version):
    """Where ZADD puts a member `<version>:<event JSON>` scored by the version: by the score, a
    float64, and among equal scores by the member's bytes."""
    return (float(version), f"{version}:")


class RedisZsetVersionPrefixedMembers(CorrectStore):
    """Redis: each actor's events in a sorted set, `ZADD events:<actor> <version> <version>:<event
    JSON>` (the version in front keeps members unique and is parsed back exactly), appended by a Lua
    script that reads the top member (`ZREVRANGE events:<actor> 0 0`) and compares its parsed version
    as an integer; reads are `ZRANGEBYSCORE events:<actor> <from> +inf` filtered by the parsed
    version.  Scores are float64, but members of equal score sort by their bytes, which for versions
    of one length is numeric order: 2^53 and 2^53+1, or 2^63-3 to 2^63-1, come out right.  Versions
    of different lengths that round to one float64 do not: 9,999,999,999,999,999 and
    10,000,000,000,000,000 are both 1e16, and "9999..." sorts above "1000...", so after saving both the
    top member - the latest version - is the lower one, and 10^16 can be saved again."""

    def latest(self, actor_id):
        stream = self.shared.events.get(actor_id)
        return max(stream, key=lambda e: _zset_order(e.version)).version if stream else 0

    def select(self, actor_id, from_version):
        rows = sorted(self.shared.events.get(actor_id, []), key=lambda e: _zset_order(e.version))
        return [copy.deepcopy(e) for e in rows if float(e.version) >= float(from_version) and e.version >= from_version]


def trigger_zset_prefixed():
    s = factory(RedisZsetVersionPrefixedMembers)()
    s.save_event(ev("a", 10**16 - 1))
    s.save_event(ev("a", 10**16))
    return s.get_latest_version("a") == 10**16 - 1


# 9 ---------------------------------------------------------------------------------------------
class S3ContentAddressedIfNoneMatch(S3ContentAddressedSnapshots):
    """Store 1 with the upload skipped when the object already exists: `PutObject(If-None-Match: *)`
    (S3 conditional writes, GCS ifGenerationMatch=0), a 412 taken as "already stored".  The object
    keeps the metadata of the *first* save of that state: an unchanged state snapshotted again at a
    higher version (the usual case for a snapshotter that runs every N events) is never recorded, and
    the latest stays at the version where the state was first seen."""

    def save_snapshot(self, snapshot):
        with self.shared.lock:
            key = hashlib.sha256(_json(snapshot.state).encode()).hexdigest()
            self.shared.objects.setdefault(snapshot.actor_id, {}).setdefault(key, copy.deepcopy(snapshot))


def trigger_if_none_match():
    s = factory(S3ContentAddressedIfNoneMatch, ContentAddressedState)()
    for v in range(1, 9):
        s.save_event(ev("a", v))
    s.save_snapshot(snap("a", 5, state={"balance": 0}))
    s.save_snapshot(snap("a", 8, state={"balance": 0}))
    return s.get_latest_snapshot("a").version == 5


# -----------------------------------------------------------------------------------------------
make_content_addressed = factory(S3ContentAddressedSnapshots, ContentAddressedState)
make_command_msg_id = factory(JetStreamCommandVersionMsgId, MsgIdState)
make_esdb_idempotent = factory(EsdbIdempotentAppend)
make_snapshot_tombstone = factory(KafkaNullStateSnapshotTombstone, SnapshotLogState)
make_compacted_event_id = factory(KafkaCompactedByEventId, KeyedLogState)
make_esdb_hint = factory(EsdbRevisionHintIdempotentResave)
make_compacted_command_id = factory(KafkaCompactedByCommandId, KeyedLogState)
make_zset_prefixed = factory(RedisZsetVersionPrefixedMembers)
make_if_none_match = factory(S3ContentAddressedIfNoneMatch, ContentAddressedState)

TRIGGERS = {
    "make_content_addressed": trigger_content_addressed,
    "make_command_msg_id": trigger_command_msg_id,
    "make_esdb_idempotent": trigger_esdb_idempotent,
    "make_snapshot_tombstone": trigger_snapshot_tombstone,
    "make_compacted_event_id": trigger_compacted_event_id,
    "make_esdb_hint": trigger_esdb_hint,
    "make_compacted_command_id": trigger_compacted_command_id,
    "make_zset_prefixed": trigger_zset_prefixed,
    "make_if_none_match": trigger_if_none_match,
}

BROKEN = {
    "make_content_addressed": "SS-SNAP-002",
    "make_command_msg_id": "ES-SAVE-001",
    "make_esdb_idempotent": "ES-CONC-001",
    "make_snapshot_tombstone": "SS-SNAP-002",
    "make_compacted_event_id": "ES-READ-003",
    "make_esdb_hint": "ES-SAVE-002",
    "make_compacted_command_id": "ES-READ-003",  # the revisit finds the planted events changed
    "make_zset_prefixed": "ES-LATEST-002",  # the latest of the tie is the lower version
    "make_if_none_match": "SS-SNAP-002",
}

# Caught in every run now (two handles save one version with one event id at once, 16 rounds); the
# name stays importable for tests/test_zoo.py.
NOT_CAUGHT: dict[str, str] = {}
