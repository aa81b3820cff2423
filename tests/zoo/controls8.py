"""Correct stores with unusual but legal behaviour (eighth adversarial review): the suite must
certify every one of them.  None of them repeats a control of controls.py, controls6.py,
escapes7c.py or unusual_backends.py.

Against spec 3.2.1 (real CLI, default profile) the suite failed two of them, both for one reason:
for a handle whose save_event is ``async def`` (capability ``asyncio``), the driver's gathered()
and cancelled_after() called every other method of the handle on the kit's event-loop thread, not
on a worker thread as spec section 6 promises:

- asyncio_run_facade: sync reads made with asyncio.run raised "asyncio.run() cannot be called
  from a running event loop" in the gathered and cancelled tests.
- loop_bound_sync_reads: sync methods that hand their coroutine to the kit's loop and block on it
  deadlocked the loop in the same tests, and the blocked loop then timed out the next tests' calls.

The driver now runs those methods on worker threads (tests/test_driver.py), and both are
certified.  Every other control was certified from the start (default profile: sync_latency in
256 s, async_refcounted_locks in 439 s); canonical_json_text, floats_amsterdam_ties_last and
strict_utc_column miss only ES-READ-004, a SHOULD (timestamps kept to the microsecond, or times Go
cannot encode refused), as spec 2.3 lets them.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import copy
import json
import pickle
import random
import threading
import time
from dataclasses import replace
from datetime import datetime, timezone

from aether_conformance import ActorSnapshot, Event, VersionConflictError
from aether_conformance.limits import ENCODED_SIZE_FLOOR, FIELD_LENGTH_FLOOR, NESTING_DEPTH_FLOOR

from .base import CorrectStore, ShareState, factory


def _conflict(event: Event, current: int) -> VersionConflictError:
    return VersionConflictError(actor_id=event.actor_id, attempted_version=event.version, current_version=current)


# -- 1. real latency on every call ---------------------------------------------------------------

class SyncLatency(CorrectStore):
    """Every call costs a 1 to 3 ms round trip (time.sleep) before and after the critical section,
    as a remote database does.  Spec 1: performance is out of scope; the per-call timeout is 10 s."""

    def _rtt(self) -> None:
        time.sleep(random.uniform(0.0005, 0.0015))

    def save_event(self, event):
        self._rtt()
        super().save_event(event)
        self._rtt()

    def get_events(self, actor_id, from_version):
        self._rtt()
        try:
            return super().get_events(actor_id, from_version)
        finally:
            self._rtt()

    def get_latest_version(self, actor_id):
        self._rtt()
        try:
            return super().get_latest_version(actor_id)
        finally:
            self._rtt()

    def save_snapshot(self, snapshot):
        self._rtt()
        super().save_snapshot(snapshot)
        self._rtt()

    def get_latest_snapshot(self, actor_id):
        self._rtt()
        try:
            return super().get_latest_snapshot(actor_id)
        finally:
            self._rtt()


sync_latency = factory(SyncLatency)


# -- 2. reads paged internally, returned as a generator ------------------------------------------

class PagedState(ShareState):
    def __init__(self) -> None:
        super().__init__()
        self.versions: dict[str, list[int]] = {}


class PagedGeneratorReads(CorrectStore):
    """get_events is a generator that fetches 100 events a page, each page under its own lock
    acquisition (a keyset-paginated query: WHERE version >= :next ORDER BY version LIMIT 100),
    and stitches the pages.  Events are only ever appended above the latest version, so the
    stitched read is the stream as of its last page: linearizable (spec 6).  Spec 3.2: get_events
    may answer with a generator; the kit reads it once, in full."""

    PAGE = 100

    def append(self, event):
        super().append(event)
        self.shared.versions.setdefault(event.actor_id, []).append(event.version)

    def get_events(self, actor_id, from_version):
        def pages():
            start = from_version
            while True:
                with self.shared.lock:
                    stream = self.shared.events.get(actor_id, [])
                    versions = self.shared.versions.get(actor_id, [])
                    at = bisect.bisect_left(versions, start)
                    page = [copy.deepcopy(e) for e in stream[at:at + self.PAGE]]
                yield from page
                if len(page) < self.PAGE:
                    return
                start = page[-1].version + 1

        return pages()


paged_generator_reads = factory(PagedGeneratorReads, PagedState)


# -- 3. asyncio: a refcounted lock per actor, awaits and real latency everywhere ------------------

class _AsyncShared:
    def __init__(self) -> None:
        self.events: dict[str, list[Event]] = {}
        self.snapshots: dict[str, ActorSnapshot] = {}
        self.locks: dict[str, list] = {}  # actor -> [asyncio.Lock, users]


class AsyncRefcountedLocks:
    """All async.  A save waits a network delay, takes the actor's asyncio.Lock (created on demand,
    deleted when its last user leaves, waiters included), waits a delay for "SELECT max(version)",
    then checks and appends with no await between (one statement), releases and waits for the
    acknowledgement.  Reads wait, copy at one instant, wait.  Only the highest snapshot is kept.
    Spec 6: the kit drives every handle on one event loop, so a store MAY rely on that."""

    def __init__(self, shared: _AsyncShared) -> None:
        self.shared = shared

    @staticmethod
    async def _rtt() -> None:
        await asyncio.sleep(random.uniform(0.0002, 0.002))

    @contextlib.asynccontextmanager
    async def _actor_lock(self, actor_id):
        locks = self.shared.locks
        entry = locks.get(actor_id)
        if entry is None:
            entry = locks[actor_id] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0 and locks.get(actor_id) is entry:
                del locks[actor_id]

    async def save_event(self, event):
        await self._rtt()
        async with self._actor_lock(event.actor_id):
            await self._rtt()
            stream = self.shared.events.get(event.actor_id)
            latest = stream[-1].version if stream else 0
            if event.version <= latest:
                raise _conflict(event, latest)
            self.shared.events.setdefault(event.actor_id, []).append(copy.deepcopy(event))
        await self._rtt()

    async def get_events(self, actor_id, from_version):
        await self._rtt()
        result = [copy.deepcopy(e) for e in self.shared.events.get(actor_id, ()) if e.version >= from_version]
        await self._rtt()
        return result

    async def get_latest_version(self, actor_id):
        await self._rtt()
        stream = self.shared.events.get(actor_id)
        latest = stream[-1].version if stream else 0
        await self._rtt()
        return latest

    async def save_snapshot(self, snapshot):
        await self._rtt()
        current = self.shared.snapshots.get(snapshot.actor_id)
        if current is None or snapshot.version > current.version:
            self.shared.snapshots[snapshot.actor_id] = copy.deepcopy(snapshot)
        await self._rtt()

    async def get_latest_snapshot(self, actor_id):
        await self._rtt()
        found = self.shared.snapshots.get(actor_id)
        result = copy.deepcopy(found)
        await self._rtt()
        return result


def async_refcounted_locks():
    shared = _AsyncShared()

    async def make():
        await asyncio.sleep(0)
        return AsyncRefcountedLocks(shared)

    return make


async_refcounted_locks = async_refcounted_locks()


# -- 4. Go-canonical JSON text, numbers as float64, timestamps normalised to UTC microseconds ---

def _go_numbers(value):
    """Every number as the float64 Go's decoder makes of it, written back as Go writes it: an
    integral float64 below 1e21 without a point (so Python reads an int), others as floats."""
    if isinstance(value, dict):
        return {k: _go_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_go_numbers(v) for v in value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    number = float(value)
    if number.is_integer() and abs(number) < 1e21:
        return int(number)
    return number


def _utc_micro(ts: datetime) -> datetime:
    """The same instant in UTC, to the microsecond (ES-READ-003); the nanoseconds and offset are
    ES-READ-004's SHOULD.  A time whose UTC date is outside years 1..9999 is kept as it is (spec 2.3)."""
    plain = datetime(ts.year, ts.month, ts.day, ts.hour, ts.minute, ts.second, ts.microsecond, tzinfo=ts.tzinfo)
    try:
        return plain.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        return ts


class CanonicalJsonText(CorrectStore):
    """Keeps each event and snapshot as canonical JSON text (sorted keys, compact), with every
    number in data or state as Go's float64 and timestamps in UTC to the microsecond.  Spec 2.3:
    values compare as Go sees JSON (1 equals 1.0, integers beyond 2^53 as the float64s they round
    to); the instant to the microsecond is the MUST, nanoseconds and offset a SHOULD."""

    @staticmethod
    def _text(record) -> str:
        body = record.to_dict()
        key = "data" if isinstance(record, Event) else "state"
        body[key] = _go_numbers(body[key])
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)

    def append(self, event):
        event = replace(event, timestamp=_utc_micro(event.timestamp))
        self.shared.events.setdefault(event.actor_id, []).append((event.version, self._text(event)))

    def latest(self, actor_id):
        stream = self.shared.events.get(actor_id)
        return stream[-1][0] if stream else 0

    def select(self, actor_id, from_version):
        return [Event.from_dict(json.loads(text), check_schema=False)
                for version, text in self.shared.events.get(actor_id, []) if version >= from_version]

    def save_snapshot(self, snapshot):
        snapshot = replace(snapshot, timestamp=_utc_micro(snapshot.timestamp))
        with self.shared.lock:
            current = self.shared.snapshots.get(snapshot.actor_id)
            if current is None or snapshot.version > current[0]:
                self.shared.snapshots[snapshot.actor_id] = (snapshot.version, self._text(snapshot))

    def get_latest_snapshot(self, actor_id):
        with self.shared.lock:
            found = self.shared.snapshots.get(actor_id)
        if found is None:
            return None
        body = json.loads(found[1])
        return ActorSnapshot(actor_id=body["actorId"], version=body["version"], state=body["state"],
                             timestamp=Event.from_dict({"id": "", "eventType": "", "actorId": "", "version": 1,
                                                        "data": None, "timestamp": body["timestamp"]},
                                                       check_schema=False).timestamp)


canonical_json_text = factory(CanonicalJsonText)


# -- 5. refuses everything a MAY lets it refuse, exactly at the floors ---------------------------

def _go_encoded_size(record) -> int:
    """Bytes of Go's json.Marshal of the record: UTF-8, compact, with <, >, & and U+2028/U+2029
    escaped as \\uXXXX (Go's HTML-safe default), which Python's ensure_ascii=False does not do."""
    text = json.dumps(record.to_dict(), separators=(",", ":"), ensure_ascii=False)
    # <, > and & are 1 byte and 6 escaped (+5 each); U+2028/9 are 3 bytes and 6 escaped (+3 each).
    extra = 5 * sum(text.count(c) for c in "<>&") + 3 * sum(text.count(c) for c in "\u2028\u2029")
    return len(text.encode("utf-8", "surrogatepass")) + extra


def _depth(value) -> int:
    """Levels of nesting, the data object itself the first (None or a scalar: 0)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, level)
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, level)
            stack.extend((v, level + 1) for v in item)
    return deepest


class RefusesAtTheFloors(CorrectStore):
    """Documents its limits exactly at the floors of aether_conformance.limits and refuses, with
    ValueError and before touching anything, all that the MAY requirements let it refuse:
    the empty actor id and ids over 256 characters (ES-ACTOR-003), the empty event id (ES-ID-002),
    an event id it already stores, on any actor (ES-ID-001; a conflict takes precedence, spec 8),
    an id, event type or command id over 1,024 characters, data or state nested over 64 levels,
    a record whose Go JSON encoding is over 512 KiB (ES-LIMIT-001), and a snapshot above the
    actor's latest event version (SS-SNAP-005)."""

    @staticmethod
    def _limits(record, nested) -> None:
        if _depth(nested) > NESTING_DEPTH_FLOOR:
            raise ValueError(f"nested deeper than {NESTING_DEPTH_FLOOR} levels")
        if _go_encoded_size(record) > ENCODED_SIZE_FLOOR:
            raise ValueError(f"encoded over {ENCODED_SIZE_FLOOR} bytes")

    @staticmethod
    def _actor(actor_id) -> None:
        if not actor_id or len(actor_id) > 256:
            raise ValueError("actor id must be 1 to 256 characters")

    def save_event(self, event):
        self._actor(event.actor_id)
        if event.id == "":
            raise ValueError("empty event id")
        for name in ("id", "event_type", "command_id"):
            if len(getattr(event, name)) > FIELD_LENGTH_FLOOR:
                raise ValueError(f"{name} over {FIELD_LENGTH_FLOOR} characters")
        self._limits(event, event.data)
        with self.shared.lock:
            latest = self.latest(event.actor_id)
            if event.version <= latest:
                raise _conflict(event, latest)
            ids = self.shared.ids
            if event.id in ids:
                raise ValueError(f"event id {event.id!r} already stored")
            self.append(event)
            ids.add(event.id)

    def save_snapshot(self, snapshot):
        self._actor(snapshot.actor_id)
        self._limits(snapshot, snapshot.state)
        with self.shared.lock:
            if snapshot.version > self.latest(snapshot.actor_id):
                raise ValueError("snapshot above the actor's latest event version")
            self.shared.snapshots.setdefault(snapshot.actor_id, []).append(copy.deepcopy(snapshot))


class IdsState(ShareState):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()


refuses_at_the_floors = factory(RefusesAtTheFloors, IdsState)


# -- 6. plain methods that return awaitable objects of the store's own ------------------------

class _Deferred:
    """An awaitable (not a coroutine, not a Future): yields to the loop a few times, then runs the
    work synchronously on the loop, as a driver's request object does."""

    def __init__(self, work, hops: int) -> None:
        self.work, self.hops = work, hops

    def __await__(self):
        for _ in range(self.hops):
            yield from asyncio.sleep(0).__await__()
        return self.work()


class AwaitableObjects(CorrectStore):
    """Every method is a plain def that returns its own awaitable object; the work happens when the
    kit awaits it on its loop.  Spec 3.2: "Each method of a handle may be synchronous, async def,
    or return an awaitable"."""

    def save_event(self, event):
        return _Deferred(lambda: CorrectStore.save_event(self, event), random.randint(0, 3))

    def get_events(self, actor_id, from_version):
        return _Deferred(lambda: iter(CorrectStore.get_events(self, actor_id, from_version)), random.randint(0, 3))

    def get_latest_version(self, actor_id):
        return _Deferred(lambda: CorrectStore.get_latest_version(self, actor_id), random.randint(0, 3))

    def save_snapshot(self, snapshot):
        return _Deferred(lambda: CorrectStore.save_snapshot(self, snapshot), random.randint(0, 3))

    def get_latest_snapshot(self, actor_id):
        return _Deferred(lambda: CorrectStore.get_latest_snapshot(self, actor_id), random.randint(0, 3))


awaitable_objects = factory(AwaitableObjects)


# -- 7. a bounded pool of two connections that blocks, sync, per-actor locks ----------------------

class PoolState(ShareState):
    def __init__(self) -> None:
        super().__init__()
        self.pool = threading.BoundedSemaphore(2)
        self.actor_locks: dict[str, threading.Lock] = {}
        self.guard = threading.Lock()


class BlockingPoolOfTwo(CorrectStore):
    """Every call borrows one of two connections (a blocking pool, shared by all handles: a call
    waits, never fails, when both are out), holds it for 0.3 ms of "I/O", and saves take a lock
    per actor (never deleted) rather than the global one.  Snapshots are kept per actor, highest
    first.  Reads copy under the actor's lock."""

    def _actor_lock(self, actor_id):
        with self.shared.guard:
            lock = self.shared.actor_locks.get(actor_id)
            if lock is None:
                lock = self.shared.actor_locks[actor_id] = threading.Lock()
            return lock

    @contextlib.contextmanager
    def _connection(self):
        with self.shared.pool:
            time.sleep(0.0003)
            yield

    def save_event(self, event):
        with self._connection(), self._actor_lock(event.actor_id):
            latest = self.latest(event.actor_id)
            if event.version <= latest:
                raise _conflict(event, latest)
            stored = copy.deepcopy(event)
            with self.shared.lock:  # the dict itself
                self.shared.events.setdefault(event.actor_id, []).append(stored)

    def get_events(self, actor_id, from_version):
        with self._connection(), self._actor_lock(actor_id):
            return self.select(actor_id, from_version)

    def get_latest_version(self, actor_id):
        with self._connection(), self._actor_lock(actor_id):
            return self.latest(actor_id)

    def save_snapshot(self, snapshot):
        with self._connection():
            super().save_snapshot(snapshot)

    def get_latest_snapshot(self, actor_id):
        with self._connection():
            return super().get_latest_snapshot(actor_id)


blocking_pool_of_two = factory(BlockingPoolOfTwo, PoolState)


# -- 8. SQLite in WAL mode, a connection per handle ---------------------------------------------

class _SqliteFile:
    """The shared database file, made by the first open handle and removed with the last one
    (a store need not keep data once its last handle closes): nothing is left behind even by
    a process that ends without running atexit handlers, as pytest-xdist's workers may."""

    def __init__(self) -> None:
        self.directory = None
        self.handles = 0
        self.guard = threading.Lock()

    def acquire(self) -> str:
        import os
        import sqlite3
        import tempfile
        with self.guard:
            if self.directory is None:
                self.directory = tempfile.mkdtemp(prefix="adv8e-wal-")
                db = sqlite3.connect(os.path.join(self.directory, "store.db"), isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("CREATE TABLE events (actor BLOB, version INTEGER, body BLOB, PRIMARY KEY (actor, version))"
                           " WITHOUT ROWID")
                db.execute("CREATE TABLE snapshots (actor BLOB, version INTEGER, body BLOB)")
                db.execute("CREATE INDEX snap_by_actor ON snapshots (actor, version)")
                db.close()
            self.handles += 1
            return os.path.join(self.directory, "store.db")

    def release(self) -> None:
        import shutil
        with self.guard:
            self.handles -= 1
            if self.handles == 0:
                shutil.rmtree(self.directory, ignore_errors=True)
                self.directory = None


class SqliteWalHandle:
    """Each handle is its own sqlite3 connection to one shared file in WAL mode; a save is BEGIN
    IMMEDIATE, SELECT max(version), INSERT, COMMIT.  Actor ids are kept as UTF-8 BLOBs (exact
    bytes, NUL included), records as pickles.  The connection is used by one thread at a time
    (the kit may call one handle from several threads)."""

    def __init__(self, file: _SqliteFile) -> None:
        import sqlite3
        self.file = file
        self.db = sqlite3.connect(file.acquire(), isolation_level=None, check_same_thread=False, timeout=30)
        self.db.execute("PRAGMA synchronous=OFF")
        self.lock = threading.Lock()

    @staticmethod
    def _key(actor_id: str) -> bytes:
        return actor_id.encode("utf-8")

    def _latest(self, key: bytes) -> int:
        row = self.db.execute("SELECT max(version) FROM events WHERE actor = ?", (key,)).fetchone()
        return row[0] if row[0] is not None else 0

    def save_event(self, event):
        key = self._key(event.actor_id)
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                latest = self._latest(key)
                if event.version <= latest:
                    raise _conflict(event, latest)
                self.db.execute("INSERT INTO events VALUES (?, ?, ?)", (key, event.version, pickle.dumps(event)))
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def get_events(self, actor_id, from_version):
        with self.lock:
            rows = self.db.execute("SELECT body FROM events WHERE actor = ? AND version >= ? ORDER BY version",
                                   (self._key(actor_id), from_version)).fetchall()
        return [pickle.loads(row[0]) for row in rows]

    def get_latest_version(self, actor_id):
        with self.lock:
            return self._latest(self._key(actor_id))

    def save_snapshot(self, snapshot):
        with self.lock:
            self.db.execute("INSERT INTO snapshots VALUES (?, ?, ?)",
                            (self._key(snapshot.actor_id), snapshot.version, pickle.dumps(snapshot)))

    def get_latest_snapshot(self, actor_id):
        with self.lock:
            row = self.db.execute("SELECT body FROM snapshots WHERE actor = ? ORDER BY version DESC LIMIT 1",
                                  (self._key(actor_id),)).fetchone()
        return pickle.loads(row[0]) if row else None

    def close(self):
        with self.lock:
            if self.file is None:
                return
            self.db.close()
            self.file, file = None, self.file
        file.release()


def _sqlite_wal_factory():
    where = _SqliteFile()

    def make():
        return SqliteWalHandle(where)

    return make


sqlite_wal_per_handle = _sqlite_wal_factory()


# -- 9. a conflict error subclass that is also a dataclass-like record, with kwargs only ---------

class ConflictWithContext(VersionConflictError):
    """The store's conflict error carries the stream's last event id and the attempted event id;
    its fields are set by the base class; str() is the base class's text."""

    def __init__(self, *, actor_id, attempted_version, current_version, last_event_id, attempted_event_id):
        super().__init__(actor_id=actor_id, attempted_version=attempted_version, current_version=current_version)
        self.last_event_id = last_event_id
        self.attempted_event_id = attempted_event_id


class GapFreeHeadIndex(CorrectStore):
    """Keeps a head index per actor (latest version and last event id) updated in the same
    critical section as the append, answers get_latest_version from the index alone, and raises
    ConflictWithContext.  Reads with from_version above the head return an empty tuple."""

    def append(self, event):
        super().append(event)
        self.shared.heads[event.actor_id] = (event.version, event.id)

    def latest(self, actor_id):
        return self.shared.heads.get(actor_id, (0, None))[0]

    def conflict(self, event, latest):
        return ConflictWithContext(actor_id=event.actor_id, attempted_version=event.version, current_version=latest,
                                   last_event_id=self.shared.heads[event.actor_id][1] if latest else None,
                                   attempted_event_id=event.id)

    def get_events(self, actor_id, from_version):
        with self.shared.lock:
            if from_version > self.latest(actor_id):
                return ()
            return tuple(self.select(actor_id, from_version))


class HeadsState(ShareState):
    def __init__(self) -> None:
        super().__init__()
        self.heads: dict[str, tuple[int, str | None]] = {}


gap_free_head_index = factory(GapFreeHeadIndex, HeadsState)


CONTROLS = ["sync_latency", "paged_generator_reads", "async_refcounted_locks", "canonical_json_text",
            "refuses_at_the_floors", "awaitable_objects", "blocking_pool_of_two", "sqlite_wal_per_handle",
            "gap_free_head_index"]


# -- 10. numbers as Python floats, timestamps in a named zone, ties keep the last, exotic refusals

def _floats(value):
    if isinstance(value, dict):
        return {k: _floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats(v) for v in value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return float(value)


_AMSTERDAM = None


def _in_amsterdam(ts: datetime) -> datetime:
    """The same instant in Europe/Amsterdam (local mean time +00:19:32 before 1937, DST after),
    nanoseconds kept; a time that zone cannot hold in years 1..9999 stays as it was."""
    global _AMSTERDAM
    from zoneinfo import ZoneInfo
    from aether_conformance.timestamps import Timestamp
    if _AMSTERDAM is None:
        _AMSTERDAM = ZoneInfo("Europe/Amsterdam")
    plain = datetime(ts.year, ts.month, ts.day, ts.hour, ts.minute, ts.second, ts.microsecond, tzinfo=ts.tzinfo,
                     fold=ts.fold)
    try:
        local = plain.astimezone(_AMSTERDAM)
    except (OverflowError, ValueError):
        return ts
    return Timestamp.from_datetime(local, getattr(ts, "nanosecond", 0))


class EmptyActorId(UnicodeEncodeError):
    """A refusal as a codec would raise it: UnicodeEncodeError is a ValueError."""


class DuplicateKey(ValueError, KeyError):
    """A unique-index violation that is a ValueError and a KeyError at once."""

    def __str__(self):
        return "duplicate key value violates unique constraint \"events_id_key\""


class FloatsAmsterdamTiesLast(CorrectStore):
    """Reads data and state back with every number a Python float (1 -> 1.0: a float64 column or a
    Go-side decoder, spec 2.3), timestamps in Europe/Amsterdam (the same instant: ES-READ-003; the
    offset is ES-READ-004's SHOULD), keeps the LAST snapshot of a tie (spec 8: either may be
    returned), and refuses the empty actor id with a UnicodeEncodeError and an event id it already
    stores with a ValueError that is also a KeyError (ES-ACTOR-003, ES-ID-001, ES-REFUSE-001:
    "ValueError (or a subclass)")."""

    def save_event(self, event):
        if event.actor_id == "":
            raise EmptyActorId("utf-8", "", 0, 0, "an empty actor id cannot be a key")
        with self.shared.lock:
            latest = self.latest(event.actor_id)
            if event.version <= latest:
                raise _conflict(event, latest)
            if event.id in self.shared.ids:
                raise DuplicateKey(event.id)
            self.append(event)
            self.shared.ids.add(event.id)

    def select(self, actor_id, from_version):
        return [replace(e, data=_floats(e.data), timestamp=_in_amsterdam(e.timestamp))
                for e in self.shared.events.get(actor_id, []) if e.version >= from_version]

    def save_snapshot(self, snapshot):
        if snapshot.actor_id == "":
            raise EmptyActorId("utf-8", "", 0, 0, "an empty actor id cannot be a key")
        with self.shared.lock:
            current = self.shared.snapshots.get(snapshot.actor_id)
            if current is None or snapshot.version >= current.version:
                self.shared.snapshots[snapshot.actor_id] = copy.deepcopy(snapshot)

    def get_latest_snapshot(self, actor_id):
        with self.shared.lock:
            found = self.shared.snapshots.get(actor_id)
            if found is None:
                return None
            return replace(found, state=_floats(found.state), timestamp=_in_amsterdam(found.timestamp))


floats_amsterdam_ties_last = factory(FloatsAmsterdamTiesLast, IdsState)

CONTROLS.append("floats_amsterdam_ties_last")


# -- 11. sync methods that hand their work to the kit's event loop and block on it ---------------

class LoopBoundSyncReads:
    """An async client bound to the kit's loop (captured by the async factory), wrapped for sync
    callers: save_event is async def; the reads, the snapshot methods and close() are plain defs
    that run their coroutine on that loop with asyncio.run_coroutine_threadsafe and block on the
    result, as sync facades over async drivers do.  Spec 3.2: the kit "runs synchronous calls on
    worker threads, so clients bound to that loop work"; spec 6: a store MAY rely on the one loop."""

    def __init__(self, shared: _AsyncShared, loop: asyncio.AbstractEventLoop) -> None:
        self.shared, self.loop = shared, loop
        self.closed = False

    def _on_loop(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=5)

    async def _lock(self, actor_id) -> asyncio.Lock:
        entry = self.shared.locks.get(actor_id)
        if entry is None:
            entry = self.shared.locks[actor_id] = [asyncio.Lock(), 0]
        return entry[0]

    async def save_event(self, event):
        lock = await self._lock(event.actor_id)
        async with lock:
            await asyncio.sleep(0)
            stream = self.shared.events.get(event.actor_id)
            latest = stream[-1].version if stream else 0
            if event.version <= latest:
                raise _conflict(event, latest)
            self.shared.events.setdefault(event.actor_id, []).append(copy.deepcopy(event))

    async def _events(self, actor_id, from_version):
        await asyncio.sleep(0)
        return [copy.deepcopy(e) for e in self.shared.events.get(actor_id, ()) if e.version >= from_version]

    async def _latest(self, actor_id):
        await asyncio.sleep(0)
        stream = self.shared.events.get(actor_id)
        return stream[-1].version if stream else 0

    async def _save_snapshot(self, snapshot):
        await asyncio.sleep(0)
        current = self.shared.snapshots.get(snapshot.actor_id)
        if current is None or snapshot.version > current.version:
            self.shared.snapshots[snapshot.actor_id] = copy.deepcopy(snapshot)

    async def _latest_snapshot(self, actor_id):
        await asyncio.sleep(0)
        return copy.deepcopy(self.shared.snapshots.get(actor_id))

    async def _close(self):
        await asyncio.sleep(0)
        self.closed = True

    def get_events(self, actor_id, from_version):
        return self._on_loop(self._events(actor_id, from_version))

    def get_latest_version(self, actor_id):
        return self._on_loop(self._latest(actor_id))

    def save_snapshot(self, snapshot):
        self._on_loop(self._save_snapshot(snapshot))

    def get_latest_snapshot(self, actor_id):
        return self._on_loop(self._latest_snapshot(actor_id))

    def close(self):
        self._on_loop(self._close())


def _loop_bound_factory():
    shared = _AsyncShared()

    async def make():
        return LoopBoundSyncReads(shared, asyncio.get_running_loop())

    return make


loop_bound_sync_reads = _loop_bound_factory()

CONTROLS.append("loop_bound_sync_reads")


# -- 12. a validating gateway: bad actor ids refused on every call, limits checked after conflicts

class ValidatingGateway(CorrectStore):
    """A gateway in front of the store validates the actor id of every call, reads included (an
    empty NATS subject token or key cannot even be looked up): the empty id and ids over 256
    characters are refused with ValueError by all five methods (ES-ACTOR-003: "may refuse the empty
    actor id, or ids over 256 characters, by raising ValueError and storing nothing").  Its limits
    (exactly the floors) are checked inside the transaction, after the version check, so an event
    both conflicting and over a limit conflicts (ES-SAVE-002 holds for every version <= latest)."""

    @staticmethod
    def _actor(actor_id):
        if not actor_id or len(actor_id) > 256:
            raise ValueError(f"actor id of {len(actor_id)} characters: 1 to 256 are allowed")

    def save_event(self, event):
        self._actor(event.actor_id)
        with self.shared.lock:
            latest = self.latest(event.actor_id)
            if event.version <= latest:
                raise _conflict(event, latest)
            for name in ("id", "event_type", "command_id"):
                if len(getattr(event, name)) > FIELD_LENGTH_FLOOR:
                    raise ValueError(f"{name} over {FIELD_LENGTH_FLOOR} characters")
            RefusesAtTheFloors._limits(event, event.data)
            self.append(event)

    def get_events(self, actor_id, from_version):
        self._actor(actor_id)
        return super().get_events(actor_id, from_version)

    def get_latest_version(self, actor_id):
        self._actor(actor_id)
        return super().get_latest_version(actor_id)

    def save_snapshot(self, snapshot):
        self._actor(snapshot.actor_id)
        RefusesAtTheFloors._limits(snapshot, snapshot.state)
        super().save_snapshot(snapshot)

    def get_latest_snapshot(self, actor_id):
        self._actor(actor_id)
        return super().get_latest_snapshot(actor_id)


validating_gateway = factory(ValidatingGateway)

CONTROLS.append("validating_gateway")


# -- 13. UTC normalisation that cannot hold a time whose UTC year is 0 or 10000 -------------------

def _strict_utc(ts: datetime) -> datetime:
    plain = datetime(ts.year, ts.month, ts.day, ts.hour, ts.minute, ts.second, ts.microsecond, tzinfo=ts.tzinfo)
    return plain.astimezone(timezone.utc)  # OverflowError outside UTC years 1..9999


class StrictUtcColumn(CorrectStore):
    """Keeps timestamps as UTC datetimes to the microsecond (a TIMESTAMPTZ column), and so raises
    OverflowError for a time whose UTC date is in year 0 or 10000, which Python's datetime cannot
    hold.  Spec 2.3: "one that normalises to UTC (which ES-READ-003 allows) cannot hold it in
    Python's datetime: such times are ES-READ-004's" (a SHOULD): the store conforms, with
    ES-READ-004 failed."""

    def append(self, event):
        super().append(replace(event, timestamp=_strict_utc(event.timestamp)))

    def save_snapshot(self, snapshot):
        super().save_snapshot(replace(snapshot, timestamp=_strict_utc(snapshot.timestamp)))


strict_utc_column = factory(StrictUtcColumn)

CONTROLS.append("strict_utc_column")


# -- 14. a sync facade made with asyncio.run (its own loop per call, on the caller's thread) ------

class AsyncioRunFacade(CorrectStore):
    """save_event is async def (an async client); the reads and snapshot methods are a sync facade
    that runs the client's coroutine with asyncio.run, a fresh event loop on the calling thread,
    as many libraries' sync APIs do.  asyncio.run refuses to run inside a running loop, which is no
    concern: spec 3.2, the kit "runs synchronous calls on worker threads".  The shared data is
    guarded by a threading.Lock held only across plain code."""

    async def save_event(self, event):
        await asyncio.sleep(0)
        self.check_and_append(event)

    async def _read(self, fn, *args):
        await asyncio.sleep(0)
        return fn(*args)

    def get_events(self, actor_id, from_version):
        return asyncio.run(self._read(CorrectStore.get_events, self, actor_id, from_version))

    def get_latest_version(self, actor_id):
        return asyncio.run(self._read(CorrectStore.get_latest_version, self, actor_id))

    def save_snapshot(self, snapshot):
        asyncio.run(self._read(CorrectStore.save_snapshot, self, snapshot))

    def get_latest_snapshot(self, actor_id):
        return asyncio.run(self._read(CorrectStore.get_latest_snapshot, self, actor_id))


asyncio_run_facade = factory(AsyncioRunFacade)

CONTROLS.append("asyncio_run_facade")
