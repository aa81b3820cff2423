"""Correct stores that behave in unusual, legal ways: each must be certified CONFORMANT.

Written by a review that looked for false failures of the kit; the docstrings cite the spec text
each unusual behaviour rests on.  None duplicates a control of tests/zoo/subtle.py (generator
reads, str subclasses, awaitable methods, Go float64 numbers, UTC or named-zone timestamps, floor
limits, snapshot ties, ...).  Three were failed by the kit before spec 3.1.1: a sequence by protocol
and an iterable cursor from get_events (ES-READ-002), and numpy-like integers in a conflict's
fields (ES-ERR-001).  tests/test_zoo.py certifies each with the real CLI.
"""

from __future__ import annotations

import asyncio
import atexit
import copy
import json
import pickle
import shutil
import sqlite3
import tempfile
import threading
import time
import unicodedata
import zlib
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone, tzinfo

from aether_conformance import ActorSnapshot, Event, Timestamp, VersionConflictError

from tests.zoo.base import CorrectStore, EventsOnly, ShareState, factory


def _walk(value, leaf, obj=dict, arr=list):
    """``value`` rebuilt: scalars through ``leaf``, objects through ``obj``, arrays through ``arr``."""
    if isinstance(value, dict):
        return obj((k, _walk(v, leaf, obj, arr)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return arr(_walk(v, leaf, obj, arr) for v in value)
    return leaf(value)


def _same(x):
    return x


# == 1. get_events result shapes ==============================================================

class TupleReads(CorrectStore):
    """get_events returns a tuple (an immutable snapshot of the rows).  Spec 3.2: "get_events may
    answer with any sequence (a list, a tuple) or an iterator"."""

    def get_events(self, actor_id, from_version):
        return tuple(super().get_events(actor_id, from_version))


class DuckSequence:
    """A result set implementing the sequence protocol (__len__, __getitem__ with int indices),
    without registering with collections.abc.Sequence: Python's glossary calls this a sequence."""

    def __init__(self, items):
        self._items = list(items)

    def __len__(self):
        return len(self._items)

    def __getitem__(self, index):
        return self._items[index]


class DuckSequenceReads(CorrectStore):
    """get_events returns a duck-typed sequence (__len__ + __getitem__, as many DB drivers' row
    lists are).  Spec 3.2: "any sequence (a list, a tuple)"; the Python glossary defines a sequence
    by __getitem__ and __len__, registration with collections.abc.Sequence is optional."""

    def get_events(self, actor_id, from_version):
        return DuckSequence(super().get_events(actor_id, from_version))


class ResultSet:
    """A lazy result set: iterable (``__iter__`` returns a fresh generator), but not itself an
    iterator (no ``__next__``), like psycopg 3's Cursor or SQLAlchemy's ScalarResult."""

    def __init__(self, store, actor_id, from_version):
        self._store, self._actor_id, self._from = store, actor_id, from_version

    def __iter__(self):
        with self._store.shared.lock:
            rows = self._store.select(self._actor_id, self._from)
        yield from rows


class IterableResultSetReads(CorrectStore):
    """get_events returns an iterable cursor object that is not an iterator (no __next__; psycopg 3
    cursors are like this).  Spec 3.2: "or an iterator (a generator, a cursor) of events; the kit
    reads it once, in full"."""

    def get_events(self, actor_id, from_version):
        return ResultSet(self, actor_id, from_version)


# == 2. records of a subclass, with extra attributes ============================================

@dataclass(frozen=True)
class StoredEvent(Event):
    """An Event with what the store knows about it besides the spec's fields."""

    global_position: int = 0
    stored_at: float = 0.0


@dataclass(frozen=True)
class StoredSnapshot(ActorSnapshot):
    snapshot_id: str = ""


class SubclassRecords(CorrectStore):
    """Returns Event and ActorSnapshot subclasses carrying extra attributes (a global log position,
    the storage time, a snapshot id).  Spec 3.2: get_events returns "list[Event]"; an instance of a
    subclass is an Event.  save_event also returns the stored record, which spec 3.2 lets it do
    ("save_event(event) -> None" in Go returns only an error; the kit ignores the return value)."""

    def append(self, event):
        position = sum(len(s) for s in self.shared.events.values()) + 1
        stored = StoredEvent(**{f: getattr(event, f) for f in
                                ("id", "event_type", "actor_id", "version", "timestamp", "command_id")},
                             data=copy.deepcopy(event.data), global_position=position, stored_at=time.time())
        self.shared.events.setdefault(event.actor_id, []).append(stored)
        return stored

    def check_and_append(self, event):
        with self.shared.lock:
            latest = self.latest(event.actor_id)
            if self.is_conflict(event, latest):
                raise self.conflict(event, latest)
            return self.append(event)

    def save_event(self, event):
        return copy.deepcopy(self.check_and_append(event))

    def save_snapshot(self, snapshot):
        stored = StoredSnapshot(actor_id=snapshot.actor_id, version=snapshot.version,
                                state=copy.deepcopy(snapshot.state), timestamp=snapshot.timestamp,
                                snapshot_id=f"snap-{id(snapshot)}")
        with self.shared.lock:
            self.shared.snapshots.setdefault(snapshot.actor_id, []).append(stored)
        return True


# == 3. data and state in other JSON-capable Python types =====================================

class ReversedDict(dict):
    """A dict subclass (an ORM's JSON column type)."""


class FrozenDict(dict):
    """A read-only dict (isolation by immutability): every mutator raises TypeError."""

    def _refuse(self, *args, **kwargs):
        raise TypeError("FrozenDict is read-only")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse
    __ior__ = _refuse


class Float64Like(float):
    """numpy.float64 is a float subclass: what a pandas/numpy-backed store returns."""


class Int64Like(int):
    """An int subclass for whole numbers (numpy's int_ on some builds, IntEnum-like driver types)."""


class NumpyLikeDataTypes(CorrectStore):
    """data and state come back with objects as dict subclasses in reversed key order, arrays as
    tuples, ints as an int subclass and floats as a float subclass; get_latest_version answers an
    int subclass.  Spec 2.1: "JSON object order carries no meaning"; values compare as Go sees JSON
    (json_equal); the model takes "a dict or None"."""

    @staticmethod
    def convert(value):
        if value is None:
            return None

        def leaf(x):
            if isinstance(x, bool) or x is None or isinstance(x, str):
                return x
            if isinstance(x, int):
                return Int64Like(x)
            return Float64Like(x)

        return _walk(value, leaf, obj=lambda items: ReversedDict(reversed(list(items))), arr=tuple)

    def select(self, actor_id, from_version):
        return [replace(e, data=self.convert(e.data)) for e in super().select(actor_id, from_version)]

    def get_latest_version(self, actor_id):
        return Int64Like(super().get_latest_version(actor_id))

    def get_latest_snapshot(self, actor_id):
        found = super().get_latest_snapshot(actor_id)
        return None if found is None else replace(found, state=self.convert(found.state))


class FrozenData(CorrectStore):
    """Returns data and state as read-only structures (FrozenDict objects, tuples for arrays)
    and OrderedDicts on the way in: callers who try to mutate a read event get TypeError, which is
    the strongest form of ES-READ-005's isolation.  Spec 2.3: data is a JSON object; the kit's own
    ES-READ-005 test expects "read-only data"."""

    @staticmethod
    def freeze(value):
        return None if value is None else _walk(value, _same, obj=FrozenDict, arr=tuple)

    def append(self, event):
        data = None if event.data is None else _walk(event.data, _same, obj=OrderedDict, arr=list)
        self.shared.events.setdefault(event.actor_id, []).append(replace(event, data=data))

    def select(self, actor_id, from_version):
        return [replace(e, data=self.freeze(e.data))
                for e in self.shared.events.get(actor_id, []) if e.version >= from_version]

    def get_latest_snapshot(self, actor_id):
        found = super().get_latest_snapshot(actor_id)
        return None if found is None else replace(found, state=self.freeze(found.state))


# == 4. timestamps ===========================================================================

class PendulumLikeZone(tzinfo):
    """A tzinfo of the store's own (pendulum's FixedTimezone is a tzinfo, not a datetime.timezone)."""

    def __init__(self, offset: timedelta) -> None:
        self._offset = offset

    def utcoffset(self, dt):
        return self._offset

    def dst(self, dt):
        return timedelta(0)

    def tzname(self, dt):
        return f"+{self._offset}"

    def __repr__(self):
        return f"PendulumLikeZone({self._offset!r})"


class PendulumLikeTimestamp(Timestamp):
    """A Timestamp subclass with helper methods (pendulum.DateTime subclasses datetime)."""

    def is_past(self) -> bool:
        return self < datetime.now(timezone.utc)


class ForeignTzinfoTimestamps(CorrectStore):
    """Timestamps come back as a datetime subclass (a Timestamp subclass, nanoseconds kept) whose
    tzinfo is the store's own class with the same offset.  Spec 2.3: "A store MUST return the same
    instant to the microsecond ... and SHOULD keep the nanoseconds and the offset"; both are kept."""

    @staticmethod
    def convert(stamp):
        ns = getattr(stamp, "nanosecond", 0)  # the digits below the microsecond (0..999)
        plain = datetime(stamp.year, stamp.month, stamp.day, stamp.hour, stamp.minute, stamp.second,
                         stamp.microsecond, tzinfo=PendulumLikeZone(stamp.utcoffset()), fold=stamp.fold)
        return PendulumLikeTimestamp.from_datetime(plain, ns)

    def select(self, actor_id, from_version):
        return [replace(e, timestamp=self.convert(e.timestamp)) for e in super().select(actor_id, from_version)]

    def get_latest_snapshot(self, actor_id):
        found = super().get_latest_snapshot(actor_id)
        return None if found is None else replace(found, timestamp=self.convert(found.timestamp))


# == 5. conflict errors ======================================================================

def own_go_quote(text: str) -> str:
    """An independent port of Go's strconv.Quote (not the kit's): IsPrint is L, M, N, P, S and U+0020."""
    short = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
             "\\": "\\\\", '"': '\\"'}
    out = []
    for char in text:
        code = ord(char)
        if char in short:
            out.append(short[char])
        elif char == " " or unicodedata.category(char)[0] in "LMNPS":
            out.append(char)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


class StoreConflictError(VersionConflictError):
    """The store's own conflict error: a subclass with extra attributes, its own __init__ (positional
    arguments) and its own __str__ producing Go's text with its own %q port."""

    def __init__(self, actor_id, attempted, current, *, backend="memory"):
        # Fields set directly, not through VersionConflictError.__init__.
        Exception.__init__(self, actor_id, attempted, current)
        self.actor_id = actor_id
        self.attempted_version = attempted
        self.current_version = current
        self.backend = backend
        self.retryable = True

    def __str__(self):
        return (f"version conflict: actor {own_go_quote(self.actor_id)} has version {self.current_version}, "
                f"cannot save version {self.attempted_version}")


class OwnConflictSubclass(CorrectStore):
    """Raises a VersionConflictError subclass with its own constructor, extra attributes and its own
    Go %q port.  Spec 3.2: "raising VersionConflictError or a subclass of it"; ES-ERR-002 fixes only
    str(error)."""

    def conflict(self, event, latest):
        return StoreConflictError(event.actor_id, event.version, latest)


# == 6. refusals (MAY), ordered before the conflict check where the spec allows ===============

class Refused(ValueError):
    """The store's own refusal type (ES-REFUSE-001: "ValueError (or a subclass)")."""


MAX_ACTOR_CHARS = 1000          # documented: ids over 1,000 characters are refused (ES-ACTOR-003 allows > 256)
MAX_FIELD_CHARS = 2048          # documented: id, event_type, command_id (floor 1,024)
MAX_DEPTH = 100                 # documented: nesting of data/state (floor 64; MySQL's JSON limit)
MAX_ENCODED = 768 * 1024        # documented: compact JSON of a record (floor 512 KiB)


def _depth(value) -> int:
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


def _validate_actor(actor_id):
    if actor_id == "":
        raise Refused("actor_id: the empty actor id is refused")
    if len(actor_id) > MAX_ACTOR_CHARS:
        raise Refused(f"actor_id: over {MAX_ACTOR_CHARS} characters")


def _validate_record(record, nested):
    _validate_actor(record.actor_id)
    if _depth(nested) > MAX_DEPTH:
        raise Refused(f"nested deeper than {MAX_DEPTH} levels")
    size = len(json.dumps(record.to_dict(), separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass"))
    if size > MAX_ENCODED:
        raise Refused(f"compact JSON encoding of {size} bytes is over {MAX_ENCODED}")


class ValidatesFirst(CorrectStore):
    """A validating front end (documented limits above the floors: actor ids 1..1,000 characters,
    fields 2,048 characters, nesting 100 levels, 768 KiB of compact JSON) that refuses with its own
    ValueError subclass *before* the version check, and also refuses reads of ids it would never
    store (empty or over-long) with that ValueError.  The empty event id is refused after the
    conflict check, since spec 8 makes the conflict "take precedence over any id check".  Legal:
    ES-ACTOR-003/ES-LIMIT-001/ES-ID-002 let a store refuse these inputs with ValueError storing
    nothing (ES-REFUSE-001); no rule orders a limit check after the version check."""

    def check_and_append(self, event):
        _validate_record(event, event.data)
        for name in ("id", "event_type", "command_id"):
            if len(getattr(event, name)) > MAX_FIELD_CHARS:
                raise Refused(f"{name}: over {MAX_FIELD_CHARS} characters")
        with self.shared.lock:
            latest = self.latest(event.actor_id)
            if self.is_conflict(event, latest):
                raise self.conflict(event, latest)
            if event.id == "":
                raise Refused("id: the empty event id is refused")
            self.append(event)

    def get_events(self, actor_id, from_version):
        _validate_actor(actor_id)
        return super().get_events(actor_id, from_version)

    def get_latest_version(self, actor_id):
        _validate_actor(actor_id)
        return super().get_latest_version(actor_id)

    def save_snapshot(self, snapshot):
        _validate_record(snapshot, snapshot.state)
        super().save_snapshot(snapshot)

    def get_latest_snapshot(self, actor_id):
        _validate_actor(actor_id)
        return super().get_latest_snapshot(actor_id)


# == 7. storage layouts and locking ==========================================================

class LocksState(ShareState):
    def __init__(self) -> None:
        super().__init__()
        self.actor_locks: dict[str, threading.Lock] = {}
        self.snapshot_best: dict[str, ActorSnapshot] = {}


class PerActorLocksLatestSnapshotOnly(CorrectStore):
    """One lock per actor (no global lock on the hot path), and only the highest snapshot is kept:
    a snapshot replaces the kept one only at a strictly higher version, exactly as the Go seed
    does.  Spec 6 requires only per-actor linearizability; SS-SNAP-002 asks for "a snapshot with
    the highest version saved"."""

    def _lock(self, actor_id):
        found = self.shared.actor_locks.get(actor_id)
        if found is None:
            with self.shared.lock:
                found = self.shared.actor_locks.setdefault(actor_id, threading.Lock())
        return found

    def check_and_append(self, event):
        with self._lock(event.actor_id):
            latest = self.latest(event.actor_id)
            if self.is_conflict(event, latest):
                raise self.conflict(event, latest)
            self.append(event)

    def get_events(self, actor_id, from_version):
        with self._lock(actor_id):
            return self.select(actor_id, from_version)

    def get_latest_version(self, actor_id):
        with self._lock(actor_id):
            return self.latest(actor_id)

    def save_snapshot(self, snapshot):
        with self._lock(snapshot.actor_id):
            kept = self.shared.snapshot_best.get(snapshot.actor_id)
            if kept is None or snapshot.version > kept.version:
                self.shared.snapshot_best[snapshot.actor_id] = copy.deepcopy(snapshot)

    def get_latest_snapshot(self, actor_id):
        with self._lock(actor_id):
            kept = self.shared.snapshot_best.get(actor_id)
            return copy.deepcopy(kept)


class CompactState(ShareState):
    def __init__(self) -> None:
        super().__init__()
        self.cold: dict[str, list[tuple[int, int, bytes]]] = {}   # (first version, last version, zlib(pickle(events)))
        self.heads: dict[str, int] = {}


class CompactingStore(CorrectStore):
    """Compacts each actor's older events: every 4 hot events are pickled, zlib-compressed and
    moved into a cold segment; reads decompress the segments they need and still return every
    event.  Spec 1: the spec "does not cover ... how a store lays out its data internally"."""

    HOT_LIMIT = 4

    def latest(self, actor_id):
        return self.shared.heads.get(actor_id, 0)

    def append(self, event):
        hot = self.shared.events.setdefault(event.actor_id, [])
        hot.append(copy.deepcopy(event))
        self.shared.heads[event.actor_id] = event.version
        if len(hot) >= self.HOT_LIMIT:
            segment = zlib.compress(pickle.dumps(hot, protocol=pickle.HIGHEST_PROTOCOL))
            self.shared.cold.setdefault(event.actor_id, []).append((hot[0].version, hot[-1].version, segment))
            self.shared.events[event.actor_id] = []

    def select(self, actor_id, from_version):
        found = []
        for _first, last, segment in self.shared.cold.get(actor_id, []):
            if last >= from_version:
                found.extend(e for e in pickle.loads(zlib.decompress(segment)) if e.version >= from_version)
        found.extend(copy.deepcopy(e) for e in self.shared.events.get(actor_id, []) if e.version >= from_version)
        return found


class PoolState(ShareState):
    def __init__(self) -> None:
        super().__init__()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="single-writer")


class SingleThreadPool(CorrectStore):
    """Every call of every handle runs on one shared worker thread (an embedded engine that is not
    thread-safe), so all calls are serialised; no lock at all.  Spec 3.2: a handle "may be used from
    several threads at once" — the store serialises them itself."""

    def _run(self, fn, *args):
        return self.shared.pool.submit(fn, *args).result()

    def _save(self, event):
        latest = self.latest(event.actor_id)
        if self.is_conflict(event, latest):
            raise self.conflict(event, latest)
        self.append(event)

    def _snap(self, snapshot):
        self.shared.snapshots.setdefault(snapshot.actor_id, []).append(copy.deepcopy(snapshot))

    def _best(self, actor_id):
        snapshots = self.shared.snapshots.get(actor_id)
        return copy.deepcopy(max(snapshots, key=lambda s: s.version)) if snapshots else None

    def save_event(self, event):
        self._run(self._save, event)

    def get_events(self, actor_id, from_version):
        return self._run(self.select, actor_id, from_version)

    def get_latest_version(self, actor_id):
        return self._run(self.latest, actor_id)

    def save_snapshot(self, snapshot):
        self._run(self._snap, snapshot)

    def get_latest_snapshot(self, actor_id):
        return self._run(self._best, actor_id)


class EventsOnlyWithClose(EventsOnly):
    """No snapshot methods at all, and a close() that the kit calls at the end.  Spec 3.2: "A handle
    that has both snapshot methods is a snapshot store"; otherwise the SS-* rules do not apply.
    Also has only save_snapshot (one of the two), which must not make it a snapshot store."""

    def __init__(self, shared: ShareState) -> None:
        super().__init__(CorrectStore(shared))
        self.closed = False

    def save_snapshot(self, snapshot):  # half a snapshot API: an unrelated method of the same name
        raise NotImplementedError("snapshots are not supported")

    def close(self):
        self.closed = True


# == 8. async ================================================================================

class AsyncState(ShareState):
    def __init__(self) -> None:
        super().__init__()
        self.alocks: dict[str, asyncio.Lock] = {}


class AsyncPerActorLocks:
    """All methods `async def`, created by an `async def` factory; an asyncio.Lock per actor, with
    awaits (simulated I/O) *inside* the lock between check and append, and outside it elsewhere.
    Spec 3.2: methods may be async def; the factory's result may be awaitable."""

    def __init__(self, shared: AsyncState) -> None:
        self.shared = shared

    def _lock(self, actor_id):
        return self.shared.alocks.setdefault(actor_id, asyncio.Lock())

    async def save_event(self, event):
        await asyncio.sleep(0)
        async with self._lock(event.actor_id):
            stream = self.shared.events.get(event.actor_id, [])
            latest = stream[-1].version if stream else 0
            await asyncio.sleep(0.0001)
            if event.version <= latest:
                raise VersionConflictError(actor_id=event.actor_id, attempted_version=event.version,
                                           current_version=latest)
            await asyncio.sleep(0)
            self.shared.events.setdefault(event.actor_id, []).append(copy.deepcopy(event))

    async def get_events(self, actor_id, from_version):
        await asyncio.sleep(0)
        async with self._lock(actor_id):
            return [copy.deepcopy(e) for e in self.shared.events.get(actor_id, []) if e.version >= from_version]

    async def get_latest_version(self, actor_id):
        async with self._lock(actor_id):
            stream = self.shared.events.get(actor_id)
            return stream[-1].version if stream else 0

    async def save_snapshot(self, snapshot):
        async with self._lock(snapshot.actor_id):
            self.shared.snapshots.setdefault(snapshot.actor_id, []).append(copy.deepcopy(snapshot))

    async def get_latest_snapshot(self, actor_id):
        await asyncio.sleep(0)
        snapshots = self.shared.snapshots.get(actor_id)
        return copy.deepcopy(max(snapshots, key=lambda s: s.version)) if snapshots else None


class ShieldedSaves(AsyncPerActorLocks):
    """A save shielded from cancellation (asyncio.shield), the usual cure for half-done writes: a
    caller that is cancelled gets CancelledError at once, and the save finishes a few turns of the
    loop later, conflicting as any other if a later save took its version first."""

    async def save_event(self, event):
        await asyncio.shield(self._save(event))

    async def _save(self, event):
        for _ in range(3):
            await asyncio.sleep(0)
        await AsyncPerActorLocks.save_event(self, event)


class ThreadedIo:
    """Every call run on a thread by asyncio.to_thread (as aiosqlite and other wrappers of blocking
    drivers do): a cancelled await leaves the call running in its thread, where it completes."""

    def __init__(self, inner: CorrectStore) -> None:
        self.inner = inner

    async def save_event(self, event):
        await asyncio.to_thread(self.inner.save_event, event)

    async def get_events(self, actor_id, from_version):
        return await asyncio.to_thread(self.inner.get_events, actor_id, from_version)

    async def get_latest_version(self, actor_id):
        return await asyncio.to_thread(self.inner.get_latest_version, actor_id)

    async def save_snapshot(self, snapshot):
        await asyncio.to_thread(self.inner.save_snapshot, snapshot)

    async def get_latest_snapshot(self, actor_id):
        return await asyncio.to_thread(self.inner.get_latest_snapshot, actor_id)


class MixedSyncAsync(CorrectStore):
    """save_event and save_snapshot are `async def`; the reads are plain sync methods (a client
    whose writes go through an async driver).  Spec 3.2: "Each method of a handle may be
    synchronous, `async def`, or return an awaitable"; changelog 2.0.0: "Handles may mix sync and
    async methods".  The shared threading lock is never held across an await."""

    async def save_event(self, event):
        self.check_and_append(event)

    async def save_snapshot(self, snapshot):
        CorrectStore.save_snapshot(self, snapshot)


class MixedAsyncReads(CorrectStore):
    """The reverse mix: save_event sync, every read `async def` (spec 3.2, as above)."""

    async def get_events(self, actor_id, from_version):
        return CorrectStore.get_events(self, actor_id, from_version)

    async def get_latest_version(self, actor_id):
        return CorrectStore.get_latest_version(self, actor_id)

    async def get_latest_snapshot(self, actor_id):
        return CorrectStore.get_latest_snapshot(self, actor_id)


# == 9. SQLite, one connection per handle =====================================================

class SQLitePerHandle:
    """Each handle is its own sqlite3 connection to one shared file (rollback journal, not WAL),
    guarded by a per-handle lock; check-and-append in BEGIN IMMEDIATE; records pickled in BLOBs,
    versions as INTEGER, actor ids as UTF-8 BLOBs.  Spec 3.2: "all handles of one factory MUST
    share one store (ES-HANDLE-001), which is how the suite models several clients of one
    database"."""

    def __init__(self, path_of_store) -> None:
        self.lock = threading.Lock()
        self._path_of_store = path_of_store
        self._connection = None

    @property
    def db(self) -> sqlite3.Connection:
        """The handle's connection, opened on first use (with self.lock held): a handle that is
        made and dropped (the kit's load check) leaves no file behind."""
        if self._connection is None:
            connection = sqlite3.connect(self._path_of_store(), timeout=30, isolation_level=None,
                                         check_same_thread=False)
            connection.execute("PRAGMA busy_timeout=30000")
            connection.execute("CREATE TABLE IF NOT EXISTS ev (a BLOB, v INTEGER, body BLOB, PRIMARY KEY (a, v))")
            connection.execute("CREATE TABLE IF NOT EXISTS sn (a BLOB, v INTEGER, n INTEGER, body BLOB)")
            self._connection = connection
        return self._connection

    @staticmethod
    def _a(actor_id):
        return actor_id.encode("utf-8")

    def save_event(self, event):
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                row = self.db.execute("SELECT MAX(v) FROM ev WHERE a = ?", (self._a(event.actor_id),)).fetchone()
                latest = row[0] if row[0] is not None else 0
                if event.version <= latest:
                    raise VersionConflictError(actor_id=event.actor_id, attempted_version=event.version,
                                               current_version=latest)
                self.db.execute("INSERT INTO ev VALUES (?, ?, ?)",
                                (self._a(event.actor_id), event.version, pickle.dumps(event, protocol=5)))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def get_events(self, actor_id, from_version):
        if from_version > 2**63 - 1:
            return []
        with self.lock:
            rows = self.db.execute("SELECT body FROM ev WHERE a = ? AND v >= ? ORDER BY v",
                                   (self._a(actor_id), max(from_version, -(2**63)))).fetchall()
        return [pickle.loads(body) for (body,) in rows]

    def get_latest_version(self, actor_id):
        with self.lock:
            row = self.db.execute("SELECT MAX(v) FROM ev WHERE a = ?", (self._a(actor_id),)).fetchone()
        return row[0] if row[0] is not None else 0

    def save_snapshot(self, snapshot):
        with self.lock:
            self.db.execute("INSERT INTO sn SELECT ?, ?, COALESCE(MAX(n), 0) + 1, ? FROM sn",
                            (self._a(snapshot.actor_id), snapshot.version, pickle.dumps(snapshot, protocol=5)))

    def get_latest_snapshot(self, actor_id):
        with self.lock:
            row = self.db.execute("SELECT body FROM sn WHERE a = ? ORDER BY v DESC, n ASC LIMIT 1",
                                  (self._a(actor_id),)).fetchone()
        return None if row is None else pickle.loads(row[0])

    def close(self):
        with self.lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


def _sqlite_factory():
    """Handles of one factory share one file, made when a handle first touches it (not at import
    or construction: the kit imports the module and makes a handle in processes that end with
    os._exit) and removed when the process exits."""
    made: list[str] = []
    lock = threading.Lock()

    def path_of_store() -> str:
        with lock:
            if not made:
                directory = tempfile.mkdtemp(prefix="zoo-controls-sqlite-")
                atexit.register(shutil.rmtree, directory, True)
                made.append(f"{directory}/store.sqlite3")
        return made[0]

    def make():
        return SQLitePerHandle(path_of_store)

    return make


# == factories ===============================================================================

tuple_reads = factory(TupleReads)
duck_sequence_reads = factory(DuckSequenceReads)
iterable_result_set_reads = factory(IterableResultSetReads)
subclass_records = factory(SubclassRecords)
numpy_like_data_types = factory(NumpyLikeDataTypes)
frozen_data = factory(FrozenData)
foreign_tzinfo_timestamps = factory(ForeignTzinfoTimestamps)
own_conflict_subclass = factory(OwnConflictSubclass)
validates_first = factory(ValidatesFirst)
per_actor_locks_latest_snapshot_only = factory(PerActorLocksLatestSnapshotOnly, LocksState)
compacting_store = factory(CompactingStore, CompactState)
single_thread_pool = factory(SingleThreadPool, PoolState)
mixed_sync_async = factory(MixedSyncAsync)
mixed_async_reads = factory(MixedAsyncReads)
sqlite_per_handle = _sqlite_factory()

_events_only_shared = ShareState()


def events_only_with_close():
    return EventsOnlyWithClose(_events_only_shared)


_async_shared = AsyncState()


async def async_per_actor_locks():
    await asyncio.sleep(0)
    return AsyncPerActorLocks(_async_shared)


_shielded_shared = AsyncState()


def shielded_saves():
    return ShieldedSaves(_shielded_shared)


_threaded_shared = ShareState()


def threaded_io():
    return ThreadedIo(CorrectStore(_threaded_shared))


CONTROLS = [
    "tuple_reads", "duck_sequence_reads", "iterable_result_set_reads", "subclass_records",
    "numpy_like_data_types", "frozen_data", "foreign_tzinfo_timestamps", "own_conflict_subclass",
    "validates_first", "per_actor_locks_latest_snapshot_only", "compacting_store",
    "single_thread_pool", "events_only_with_close", "async_per_actor_locks", "mixed_sync_async",
    "mixed_async_reads", "sqlite_per_handle", "shielded_saves", "threaded_io",
]


# == 10. integer-like versions in the conflict error ===========================================

class IndexInt:
    """An integer type that is not an int subclass but says it is an integer (``__index__``), as
    numpy.int64 does: what a store that reads its latest version through numpy/pandas/DuckDB holds."""

    __slots__ = ("_value",)

    def __init__(self, value: int) -> None:
        self._value = int(value)

    def __index__(self) -> int:
        return self._value

    __int__ = __index__

    def __eq__(self, other):
        try:
            return self._value == other.__index__()
        except AttributeError:
            return NotImplemented

    def __hash__(self):
        return hash(self._value)

    def __lt__(self, other):
        return self._value < int(other)

    def __format__(self, spec):
        return format(self._value, spec)

    def __repr__(self):
        return f"int64({self._value})"

    __str__ = lambda self: str(self._value)  # noqa: E731


class IndexIntVersions(CorrectStore):
    """get_latest_version answers an IndexInt (numpy.int64-like), and the conflict error carries the
    same IndexInt as current_version; the error's text is Go's.  The kit's driver accepts such a
    value from get_latest_version ("an integer type that says it is one (__index__: numpy's
    int64, a driver's own)"); ES-ERR-001 asks that current_version be "the actor's latest version"
    and says nothing of its Python type."""

    def latest(self, actor_id):
        return IndexInt(super().latest(actor_id))

    def is_conflict(self, event, latest):
        return event.version <= latest.__index__()


index_int_versions = factory(IndexIntVersions)
CONTROLS.append("index_int_versions")


# == 11. group commit, and SQLite across processes =============================================

class GroupCommitState(ShareState):
    def __init__(self) -> None:
        super().__init__()
        import queue

        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.started = False


class GroupCommit(CorrectStore):
    """Saves are queued to one writer thread that applies every queued save in a batch (check and
    append under the lock, in queue order), then "fsyncs" the batch (1 ms) and only then answers
    each caller: an applied save is visible to readers before its writer hears back.  Legal: spec 6
    asks for a linearizable store, and a write may take effect at any point between its call and
    its return."""

    def _writer(self):
        q = self.shared.queue
        while True:
            batch = [q.get()]
            while True:
                try:
                    batch.append(q.get_nowait())
                except Exception:
                    break
            outcomes = []
            for event, future in batch:
                try:
                    CorrectStore.check_and_append(self, event)
                    outcomes.append((future, None))
                except Exception as error:  # a conflict, answered with the batch
                    outcomes.append((future, error))
            time.sleep(0.001)
            for future, error in outcomes:
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)

    def save_event(self, event):
        from concurrent.futures import Future

        with self.shared.lock:
            if not self.shared.started:
                self.shared.started = True
                threading.Thread(target=self._writer, name="group-commit", daemon=True).start()
        future: Future = Future()
        self.shared.queue.put((copy.deepcopy(event), future))
        future.result()


group_commit = factory(GroupCommit, GroupCommitState)
CONTROLS.append("group_commit")
