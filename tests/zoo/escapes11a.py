"""Stores an eleventh adversarial review (a) wrote: what a store leaves behind when a call is
refused or fails, on the error paths of real backends (a second table written before the refusal,
a write-ahead queue replayed later, a cache written first, a command index written after).

Each store is tests/zoo/base.py's CorrectStore broken in one place.  ``TRIGGERS`` maps each factory
name to a deterministic function showing the bug by direct calls (True when it shows); ``BROKEN``
names the MUST requirement each one breaks.  The real CLI (default profile) certified 7 of the 8
(all but make_gap_conflict); make_head_guard was certified by thorough too.

The suite now flags all 8 (tests/test_zoo.py): after each refusal the refused version takes a
plain event (make_head_guard), the stream is read through the other handle (make_cache_first) and
again after a save to another actor (make_write_ahead); each long field is offered alone
(make_command_index); a refused snapshot ahead of the events stays refused once the events pass
it (make_ahead_hidden), and a refused oversized snapshot's version takes a plain one
(make_snapshot_pointer); an actor id refused for events is offered a snapshot (make_snapshot_keys).
"""

from __future__ import annotations

import copy
import json

from aether_conformance import VersionConflictError
from tests.zoo.base import CorrectStore, ShareState, ev, factory, snap

# A documented limit above the floor of 512 KiB (ES-LIMIT-001): 1 MiB of compact JSON.
LIMIT = 1024 * 1024
FIELD_LIMIT = 1024


def _size(record) -> int:
    return len(json.dumps(record.to_dict(), separators=(",", ":"), ensure_ascii=False).encode())


def _too_big(record) -> bool:
    return _size(record) > LIMIT


def _refused(call) -> bool:
    try:
        call()
    except ValueError:
        return True
    return False


# 1 ---------------------------------------------------------------------------------------------
class HeadState(ShareState):
    def __init__(self):
        super().__init__()
        self.heads: dict[str, int] = {}
        self.ids: set[str] = set()


class HeadGuardBumpedBeforeRefusal(CorrectStore):
    """Postgres, two tables in autocommit: the guard is `UPDATE streams SET version = $v WHERE
    actor_id = $a AND version < $v` (no row updated: a conflict), then `INSERT INTO events`, whose
    unique index on the event id (ES-ID-001) or CHECK on the payload's size (ES-LIMIT-001, 1 MiB)
    fails and is raised as ValueError; the handler does not roll the stream row back.  The conflict
    error's current_version and get_latest_version both read `max(version) FROM events`, so the
    refusal looks clean to every read - but the actor's next save at any version up to the refused
    one is a conflict (naming a current version below the attempted one)."""

    def check_and_append(self, event):
        with self.shared.lock:
            head = self.shared.heads.get(event.actor_id, 0)
            if event.version <= head:
                raise self.conflict(event, self.latest(event.actor_id))
            self.shared.heads[event.actor_id] = event.version
            if event.id in self.shared.ids:
                raise ValueError(f"duplicate key value violates unique constraint \"events_id_key\": {event.id!r}")
            if _too_big(event):
                raise ValueError("new row for relation \"events\" violates check constraint \"events_size\"")
            self.shared.ids.add(event.id)
            self.append(event)


def trigger_head_guard():
    s = factory(HeadGuardBumpedBeforeRefusal, HeadState)()
    first = ev("a", 1)
    s.save_event(first)
    if not _refused(lambda: s.save_event(ev("a", 2, id=first.id))):
        return False
    try:
        s.save_event(ev("a", 2))
    except VersionConflictError:
        return True
    return False


# 2 ---------------------------------------------------------------------------------------------
class QueueState(ShareState):
    def __init__(self):
        super().__init__()
        self.queue: list = []


class WriteAheadQueueReplaysRefused(CorrectStore):
    """DynamoDB behind a durable write-ahead queue (SQS): every save is enqueued first, written
    synchronously, and its message deleted on success or on a conflict.  An item over the
    documented 1 MiB is refused with ValueError before the delete, so the message stays; the
    queue consumer, drained at the start of the next save of any actor, replays it through the
    large-payload path (a claim check in S3), which has no size limit.  The refused event appears
    in its actor's stream one save later."""

    def _drain(self):
        queue, self.shared.queue = self.shared.queue, []
        for event in queue:
            if event.version > self.latest(event.actor_id):
                self.append(event)

    def check_and_append(self, event):
        with self.shared.lock:
            self._drain()
            latest = self.latest(event.actor_id)
            if self.is_conflict(event, latest):
                raise self.conflict(event, latest)
            if _too_big(event):
                self.shared.queue.append(copy.deepcopy(event))
                raise ValueError(f"item size {_size(event)} exceeds the documented limit of {LIMIT} bytes")
            self.append(event)


def trigger_write_ahead():
    s = factory(WriteAheadQueueReplaysRefused, QueueState)()
    if not _refused(lambda: s.save_event(ev("big", 1, data={"blob": "x" * LIMIT}))):
        return False
    if s.get_events("big", 0):
        return False
    s.save_event(ev("other", 1))
    return len(s.get_events("big", 0)) == 1


# 3 ---------------------------------------------------------------------------------------------
class RefusedAheadSnapshotKeptHidden(CorrectStore):
    """Postgres in autocommit: `INSERT INTO snapshots`, then the check the store added for
    SS-SNAP-005 (`SELECT max(version) FROM events`), raising ValueError when the snapshot is ahead,
    without deleting the row it already wrote.  get_latest_snapshot guards against such rows by
    reading only `WHERE version <= (SELECT max(version) FROM events ...)`, so the refusal looks
    clean; once the events catch up, the refused snapshot is the actor's latest."""

    def save_snapshot(self, snapshot):
        with self.shared.lock:
            self.shared.snapshots.setdefault(snapshot.actor_id, []).append(copy.deepcopy(snapshot))
            latest = self.latest(snapshot.actor_id)
            if snapshot.version > latest:
                raise ValueError(f"snapshot version {snapshot.version} is ahead of the latest event {latest}")

    def get_latest_snapshot(self, actor_id):
        with self.shared.lock:
            latest = self.latest(actor_id)
            rows = [s for s in self.shared.snapshots.get(actor_id, []) if s.version <= latest]
            return copy.deepcopy(max(rows, key=lambda s: s.version)) if rows else None


def trigger_ahead_hidden():
    s = factory(RefusedAheadSnapshotKeptHidden)()
    s.save_event(ev("a", 1))
    s.save_snapshot(snap("a", 1))
    if not _refused(lambda: s.save_snapshot(snap("a", 9, state={"ahead": True}))):
        return False
    if s.get_latest_snapshot("a").version != 1:
        return False
    for v in range(2, 11):
        s.save_event(ev("a", v))
    return s.get_latest_snapshot("a").version == 9


# 4 ---------------------------------------------------------------------------------------------
class SnapHeadState(ShareState):
    def __init__(self):
        super().__init__()
        self.snap_heads: dict[str, int] = {}


class SnapshotPointerBumpedBeforeOversizeRefusal(CorrectStore):
    """DynamoDB: the stream's head item carries the latest snapshot's version, raised first by a
    conditional update (`SET snap_version = :v IF attribute_not_exists(snap_version) OR
    snap_version < :v`); a failed condition means an equal or newer snapshot is already there, and
    the save returns quietly (snapshots are idempotent).  The snapshot item is put next; one over
    the documented 1 MiB is refused with ValueError, and the head is not lowered again.  Reads take
    the highest snapshot item, so the refusal looks clean - but a smaller snapshot saved again at
    the refused version is acknowledged and dropped."""

    def save_snapshot(self, snapshot):
        with self.shared.lock:
            head = self.shared.snap_heads.get(snapshot.actor_id)
            if head is not None and snapshot.version <= head:
                return  # ConditionalCheckFailed: "already have this one or newer"
            self.shared.snap_heads[snapshot.actor_id] = snapshot.version
            if _too_big(snapshot):
                raise ValueError(f"snapshot item of {_size(snapshot)} bytes exceeds the documented limit of {LIMIT}")
            self.shared.snapshots.setdefault(snapshot.actor_id, []).append(copy.deepcopy(snapshot))


def trigger_snapshot_pointer():
    s = factory(SnapshotPointerBumpedBeforeOversizeRefusal, SnapHeadState)()
    s.save_event(ev("a", 1))
    s.save_snapshot(snap("a", 1))
    s.save_event(ev("a", 2))
    if not _refused(lambda: s.save_snapshot(snap("a", 2, state={"blob": "x" * LIMIT}))):
        return False
    s.save_snapshot(snap("a", 2, state={"small": True}))
    return s.get_latest_snapshot("a").version == 1


# 5 ---------------------------------------------------------------------------------------------
class StringDataRightTruncation(Exception):
    """psycopg.errors.StringDataRightTruncation (a DataError, not a ValueError)."""


class CommandIndexWrittenAfterInsert(CorrectStore):
    """Postgres: the store validates its documented limits up front (ValueError for an event id or
    event type over 1,024 characters, or an event over 1 MiB) but forgets the command id, which has
    a lookup table of its own (`commands(command_id VARCHAR(1024), actor_id, version)`, for 'was
    this command handled?'), written after the event insert in autocommit.  A command id over 1,024
    characters on an event whose id and type are short is stored, then the command insert fails
    with StringDataRightTruncation: not a ValueError, and the event stays."""

    def check_and_append(self, event):
        with self.shared.lock:
            latest = self.latest(event.actor_id)
            if self.is_conflict(event, latest):
                raise self.conflict(event, latest)
            if len(event.id) > FIELD_LIMIT or len(event.event_type) > FIELD_LIMIT:
                raise ValueError("event id or event type longer than 1024 characters")
            if _too_big(event):
                raise ValueError(f"event of {_size(event)} bytes exceeds the documented limit of {LIMIT}")
            self.append(event)
            if len(event.command_id) > FIELD_LIMIT:
                raise StringDataRightTruncation("value too long for type character varying(1024)")


def trigger_command_index():
    s = factory(CommandIndexWrittenAfterInsert)()
    try:
        s.save_event(ev("a", 1, command_id="c" * 4096))
    except ValueError:
        return False
    except StringDataRightTruncation:
        return len(s.get_events("a", 0)) == 1
    return False


# 6 ---------------------------------------------------------------------------------------------
class CacheState(ShareState):
    def __init__(self):
        super().__init__()
        self.cache: dict[str, int] = {}  # Redis: latest:<actor>
        self.ids: set[str] = set()


class CacheFirstLatestReadYourWrites(CorrectStore):
    """A Redis cache of latest versions, written through *before* the database insert (`SET
    latest:A v` once the version check has passed), read-through on a miss.  For read-your-writes,
    a handle reads the actors it has written to from the primary database and everything else from
    the cache.  A save the insert then refuses (a reused event id, ES-ID-001, or an event over the
    documented 1 MiB) raises ValueError and leaves the cache bumped: the handle that made the call
    reads the database and sees nothing, every other handle reads the refused version as latest."""

    def __init__(self, shared):
        super().__init__(shared)
        self.written: set[str] = set()

    def check_and_append(self, event):
        with self.shared.lock:
            latest = self.latest(event.actor_id)
            if self.is_conflict(event, latest):
                raise self.conflict(event, latest)
            self.written.add(event.actor_id)
            self.shared.cache[event.actor_id] = max(self.shared.cache.get(event.actor_id, 0), event.version)
            if event.id in self.shared.ids:
                raise ValueError(f"event id {event.id!r} is already stored")
            if _too_big(event):
                raise ValueError(f"event of {_size(event)} bytes exceeds the documented limit of {LIMIT}")
            self.shared.ids.add(event.id)
            self.append(event)

    def get_latest_version(self, actor_id):
        with self.shared.lock:
            if actor_id in self.written:
                return self.latest(actor_id)
            if actor_id not in self.shared.cache:
                self.shared.cache[actor_id] = self.latest(actor_id)
            return self.shared.cache[actor_id]


def trigger_cache_first():
    make = factory(CacheFirstLatestReadYourWrites, CacheState)
    one, two = make(), make()
    first = ev("a", 1)
    one.save_event(first)
    if not _refused(lambda: one.save_event(ev("a", 2, id=first.id))):
        return False
    return one.get_latest_version("a") == 1 and two.get_latest_version("a") == 2


# 7 ---------------------------------------------------------------------------------------------
class InvalidKeyError(Exception):
    """nats.js.errors.InvalidKeyError (a NATS KV key that is empty or too long: not a ValueError)."""


class SnapshotKeysUnvalidated(CorrectStore):
    """A NATS store: events on subjects, whose builder refuses the empty actor id and ids over 256
    characters with ValueError (ES-ACTOR-003); snapshots in a KV bucket, keyed by the raw actor id,
    whose path never runs that check.  The KV client raises its own InvalidKeyError for the empty
    key and for keys over its limit: a snapshot of such an id is refused, but not with a
    ValueError."""

    def save_event(self, event):
        if event.actor_id == "" or len(event.actor_id) > 256:
            raise ValueError(f"actor id of {len(event.actor_id)} characters is not supported")
        return super().save_event(event)

    def save_snapshot(self, snapshot):
        if snapshot.actor_id == "" or len(snapshot.actor_id) > 256:
            raise InvalidKeyError("nats: invalid key")
        return super().save_snapshot(snapshot)


def trigger_snapshot_keys():
    s = factory(SnapshotKeysUnvalidated)()
    if not _refused(lambda: s.save_event(ev("", 1))):
        return False
    try:
        s.save_snapshot(snap("", 0))
    except ValueError:
        return False
    except InvalidKeyError:
        return True
    return False


# 8 ---------------------------------------------------------------------------------------------
class GapConflictLeavesRow(CorrectStore):
    """Postgres in autocommit, two statements: `INSERT INTO events` (primary key (actor_id,
    version)), then the stream guard `UPDATE streams SET version = $v WHERE actor_id = $a AND
    version < $v`; no row updated is a conflict, raised without deleting the row just inserted.
    At a version already stored, the primary key refuses the insert first and nothing is left; at
    a version below the latest that is not stored (a gap: 4 when the actor holds 2 and 5), the
    insert goes through, the guard then conflicts, and the rejected event stays in the stream."""

    def check_and_append(self, event):
        with self.shared.lock:
            latest = self.latest(event.actor_id)
            stream = self.shared.events.get(event.actor_id, [])
            if any(e.version == event.version for e in stream):
                raise self.conflict(event, latest)  # unique_violation on the primary key
            if event.version >= 1:  # CHECK (version >= 1) refuses the others before the insert
                stream = self.shared.events.setdefault(event.actor_id, [])
                stream.append(copy.deepcopy(event))
                stream.sort(key=lambda e: e.version)
            if self.is_conflict(event, latest):
                raise self.conflict(event, latest)


def trigger_gap_conflict():
    s = factory(GapConflictLeavesRow)()
    for v in (2, 5):
        s.save_event(ev("a", v))
    try:
        s.save_event(ev("a", 4))
    except VersionConflictError:
        return [e.version for e in s.get_events("a", 0)] == [2, 4, 5]
    return False


TRIGGERS = {
    "make_head_guard": trigger_head_guard,
    "make_write_ahead": trigger_write_ahead,
    "make_ahead_hidden": trigger_ahead_hidden,
    "make_snapshot_pointer": trigger_snapshot_pointer,
    "make_command_index": trigger_command_index,
    "make_cache_first": trigger_cache_first,
    "make_snapshot_keys": trigger_snapshot_keys,
    "make_gap_conflict": trigger_gap_conflict,
}

make_head_guard = factory(HeadGuardBumpedBeforeRefusal, HeadState)
make_write_ahead = factory(WriteAheadQueueReplaysRefused, QueueState)
make_ahead_hidden = factory(RefusedAheadSnapshotKeptHidden)
make_snapshot_pointer = factory(SnapshotPointerBumpedBeforeOversizeRefusal, SnapHeadState)
make_command_index = factory(CommandIndexWrittenAfterInsert)
make_cache_first = factory(CacheFirstLatestReadYourWrites, CacheState)
make_snapshot_keys = factory(SnapshotKeysUnvalidated)
make_gap_conflict = factory(GapConflictLeavesRow)

BROKEN = {
    "make_head_guard": "ES-REFUSE-001",
    "make_write_ahead": "ES-REFUSE-001",
    "make_ahead_hidden": "ES-REFUSE-001",
    "make_snapshot_pointer": "ES-REFUSE-001",
    "make_command_index": "ES-REFUSE-001",
    "make_cache_first": "ES-REFUSE-001",
    "make_snapshot_keys": "ES-REFUSE-001",
    "make_gap_conflict": "ES-SAVE-003",
}
