"""Stores a seventh adversarial review (c) wrote on concurrency, caching and lifecycle: bugs that
show only under contention the suite's plans do not produce (more saves of one actor in flight than
its writers, two *different* actors in one lock bucket at once, a save waiting seconds behind a
lock), or on paths a refusal takes.

Each store is tests/zoo/base.py's CorrectStore broken in one place.  ``TRIGGERS`` maps each factory
name to a deterministic function showing the bug by direct calls (True when it shows); ``BROKEN``
names the MUST requirement each one breaks.  ``CONTROLS`` are correct stores with unusual but legal
behaviour, which the suite must certify.

Against spec 3.2.1 (real CLI, default profile) seven of the nine broken stores were certified:
make_hot_key, make_bucket_etag, make_statement_timeout, make_snapshot_cas, make_listen_slots_32,
make_desc_offset and make_far_ahead (each also by thorough); make_lock_leak (ES-REFUSE-001) and
make_negative_fill (ES-CONC-001) were flagged.  All five controls were certified.  The suite now
flags make_bucket_etag, make_far_ahead (a burst of 32 writers on actors whose CRC-32 and hashCode
are equal, saves up to 63 versions ahead), make_listen_slots_32 (36 handles open at once, the run's
own included), make_desc_offset (the side reader's whole-stream reads of actors of 250+ events are
checked), make_async_hot_key (an asyncio variant: 32 saves of one actor gathered at once) and,
later, make_hot_key: 32 saves of one actor meet a read of its last 250 events in progress,
twelve rounds (one round caught it in about half the runs).  ``NOT_CAUGHT`` lists the two no run
catches in every run, and why.
"""

from __future__ import annotations

import asyncio
import bisect
import copy
import threading
import time
import zlib

from aether_conformance import VersionConflictError
from tests.zoo.base import CorrectStore, ShareState, ev, factory, snap
from tests.zoo.escapes6a import ListenSlotsExhausted, ListenState


# 1 ---------------------------------------------------------------------------------------------
class HotKeyState(ShareState):
    def __init__(self):
        super().__init__()
        self.count_lock = threading.Lock()
        self.in_flight: dict[str, int] = {}  # saves of each actor (partition key) in flight


HOT_KEY_LIMIT = 16  # concurrent writes one partition key serves before it throttles


class HotKeyThrottleAsConflict(CorrectStore):
    """Cosmos DB / DynamoDB: one logical partition per actor.  A partition serves a bounded number of
    concurrent writes; beyond it the service throttles (HTTP 429 / ProvisionedThroughputExceeded).
    The store's error mapper sends every 4xx of a conditional write to VersionConflictError, with
    the current version it read before the write.  Up to 16 saves of one actor in flight at once
    are served; the 17th is told "conflict" at a version above the actor's latest."""

    def check_and_append(self, event):
        shared, actor = self.shared, event.actor_id
        with shared.count_lock:
            shared.in_flight[actor] = shared.in_flight.get(actor, 0) + 1
            throttled = shared.in_flight[actor] > HOT_KEY_LIMIT
        try:
            if throttled:
                raise self.conflict(event, self.latest(actor))  # the 429, mapped as a 412
            super().check_and_append(event)
        finally:
            with shared.count_lock:
                shared.in_flight[actor] -= 1


def trigger_hot_key():
    make = factory(HotKeyThrottleAsConflict, HotKeyState)
    s = make()
    outcomes: list = []
    s.shared.lock.acquire()  # a slow commit in progress: every save of the actor queues behind it
    threads = [threading.Thread(target=lambda v=v: outcomes.append(_outcome(s, ev("hot", v)))) for v in range(1, 17)]
    for t in threads:
        t.start()
    while s.shared.in_flight.get("hot", 0) < HOT_KEY_LIMIT:
        time.sleep(0.001)
    seventeenth = _outcome(s, ev("hot", 100))  # latest is 0: version 100 must be accepted
    s.shared.lock.release()
    for t in threads:
        t.join()
    return isinstance(seventeenth, VersionConflictError) and seventeenth.current_version < 100


class AsyncHotKeyThrottleAsConflict(CorrectStore):
    """The same throttled partition behind an asyncio client: a save counts itself in flight, awaits
    its round trip, and the 17th of one actor in flight at once is told "conflict" at the version
    the store read before the write.  An application that fans saves of one actor out with
    asyncio.gather puts that many in flight at once."""

    async def save_event(self, event):
        shared, actor = self.shared, event.actor_id
        shared.in_flight[actor] = shared.in_flight.get(actor, 0) + 1
        try:
            latest = self.latest(actor)
            await asyncio.sleep(0)  # the round trip
            if shared.in_flight[actor] > HOT_KEY_LIMIT:
                raise self.conflict(event, latest)  # the 429, mapped as a 412
            self.check_and_append(event)
        finally:
            shared.in_flight[actor] -= 1

    async def get_events(self, actor_id, from_version):
        return CorrectStore.get_events(self, actor_id, from_version)

    async def get_latest_version(self, actor_id):
        return CorrectStore.get_latest_version(self, actor_id)


def trigger_async_hot_key():
    s = factory(AsyncHotKeyThrottleAsConflict, HotKeyState)()

    async def go():
        return await asyncio.gather(*(s.save_event(ev("hot", v)) for v in range(1, 18)), return_exceptions=True)

    outcomes = asyncio.run(go())
    return any(isinstance(o, VersionConflictError) and o.current_version < o.attempted_version for o in outcomes)


def _outcome(store, event):
    try:
        store.save_event(event)
    except VersionConflictError as error:
        return error
    return None


# 2 ---------------------------------------------------------------------------------------------
BUCKETS = 4096


def bucket(actor_id: str) -> int:
    return zlib.crc32(actor_id.encode("utf-8")) % BUCKETS


class BucketState(ShareState):
    def __init__(self):
        super().__init__()
        self.etags: dict[int, int] = {}  # the ETag of each bucket's head row


class BucketEtagContention(CorrectStore):
    """Azure Table storage / Cosmos with a bucketed head row: streams are spread over 4,096 partitions
    (crc32 of the actor id), each with one head entity holding the latest version of its actors,
    updated with If-Match on the entity's ETag.  The store reads the head (version and ETag), then
    writes the event and the head in one batch.  A 412 because *another actor of the bucket* moved
    the ETag meanwhile is mapped to VersionConflictError (it should re-read and retry): two actors
    that share a bucket and save at once get a false conflict.  With a few actors per test, two of
    them share a bucket about once in a thousand runs."""

    def read_head(self, event):
        with self.shared.lock:
            return self.shared.etags.get(bucket(event.actor_id), 0), self.latest(event.actor_id)

    def commit(self, event, seen):
        etag, head = seen
        with self.shared.lock:
            latest = self.latest(event.actor_id)
            if self.is_conflict(event, latest):
                raise self.conflict(event, latest)
            key = bucket(event.actor_id)
            if self.shared.etags.get(key, 0) != etag and latest == head:
                raise self.conflict(event, latest)  # 412 Precondition Failed on the bucket's head
            self.append(event)
            self.shared.etags[key] = self.shared.etags.get(key, 0) + 1

    def check_and_append(self, event):
        seen = self.read_head(event)
        time.sleep(0.0001)  # the round trip between the read and the batch
        self.commit(event, seen)


def _bucket_twins() -> tuple[str, str]:
    first, n = "acct-0", 1
    while bucket(f"acct-{n}") != bucket(first):
        n += 1
    return first, f"acct-{n}"


def trigger_bucket_etag():
    s = factory(BucketEtagContention, BucketState)()
    a, b = _bucket_twins()
    event = ev(a, 1)
    seen = s.read_head(event)
    s.save_event(ev(b, 1))  # another actor of the bucket saves meanwhile
    try:
        s.commit(event, seen)
    except VersionConflictError as error:
        return error.current_version == 0
    return False


# 3 ---------------------------------------------------------------------------------------------
class QueuedState(ShareState):
    def __init__(self):
        super().__init__()
        self.queued: list = []  # statements the server received but the client gave up on


LOCK_WAIT_SECONDS = 2.5  # the client's statement timeout


class StatementTimeoutRetryApplied(CorrectStore):
    """psycopg/asyncpg with a client-side command timeout of 2.5 s and a retry decorator (tenacity)
    on timeouts: a save that waits that long behind a row lock times out on the client, but the
    server still holds its INSERT and runs it once the lock frees (the cancel request lost the
    race).  The retry then hits the unique index on (actor, version) and the store raises
    VersionConflictError with current_version its own version: the caller is told its save was
    rejected, and the event is there."""

    def _run_queued(self):
        for queued in self.shared.queued:
            if not self.is_conflict(queued, self.latest(queued.actor_id)):
                self.append(queued)
        self.shared.queued.clear()

    def check_and_append(self, event):
        shared = self.shared
        if not shared.lock.acquire(timeout=LOCK_WAIT_SECONDS):
            shared.queued.append(copy.deepcopy(event))  # the server still has it
            shared.lock.acquire()  # the retry
        try:
            self._run_queued()
            latest = self.latest(event.actor_id)
            if self.is_conflict(event, latest):
                raise self.conflict(event, latest)
            self.append(event)
        finally:
            shared.lock.release()

    def get_events(self, actor_id, from_version):
        with self.shared.lock:
            self._run_queued()
            return self.select(actor_id, from_version)

    def get_latest_version(self, actor_id):
        with self.shared.lock:
            self._run_queued()
            return self.latest(actor_id)


def trigger_statement_timeout():
    s = factory(StatementTimeoutRetryApplied, QueuedState)()
    s.save_event(ev("a", 1))
    held = threading.Thread(target=lambda: (s.shared.lock.acquire(), time.sleep(LOCK_WAIT_SECONDS + 0.3),
                                            s.shared.lock.release()))
    held.start()
    time.sleep(0.05)
    event = ev("a", 2)
    outcome = _outcome(s, event)
    held.join()
    return isinstance(outcome, VersionConflictError) and [e.id for e in s.get_events("a", 2)] == [event.id]


# 4 ---------------------------------------------------------------------------------------------
class ActorLockState(ShareState):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.actor_locks: dict[str, threading.Lock] = {}

    def actor_lock(self, actor_id):
        with self.lock:
            return self.actor_locks.setdefault(actor_id, threading.Lock())


class LockLeakOnRefusal(CorrectStore):
    """A store that refuses reused event ids (ES-ID-001 allows it) behind a unique index, with a
    lock per actor taken by hand: `lock.acquire()`, then `release()` after the append and in
    `except VersionConflictError`.  The unique-violation path raises ValueError and never releases:
    the refusal itself is clean, but the actor's next save waits for ever."""

    def check_and_append(self, event):
        lock = self.shared.actor_lock(event.actor_id)
        lock.acquire()
        try:
            with self.shared.lock:
                latest = self.latest(event.actor_id)
            if self.is_conflict(event, latest):
                raise self.conflict(event, latest)
        except VersionConflictError:
            lock.release()
            raise
        with self.shared.lock:
            if event.id in self.shared.ids:
                raise ValueError(f"event id {event.id!r} is already stored")  # the lock stays held
            self.append(event)
            self.shared.ids.add(event.id)
        lock.release()


def trigger_lock_leak():
    s = factory(LockLeakOnRefusal, ActorLockState)()
    first = ev("a", 1)
    s.save_event(first)
    try:
        s.save_event(ev("a", 2, id=first.id))
    except ValueError:
        pass
    done = threading.Event()
    threading.Thread(target=lambda: (s.save_event(ev("a", 2)), done.set()), daemon=True).start()
    return not done.wait(0.5)


# 5 ---------------------------------------------------------------------------------------------
class NegativeState(ShareState):
    def __init__(self):
        super().__init__()
        self.unknown: set[str] = set()  # actors known to have no events (a negative cache)


class NegativeCacheFillRace(CorrectStore):
    """A shared read-through cache (Redis) that remembers actors with no events, so that the many
    reads of actors never written skip the database; a save of an actor deletes its entry.  The
    reader that missed SETs "unknown" after its SELECT returned 0, without a lease or a version
    guard: when the actor's first save lands between the SELECT and the SET, the entry is set over
    the invalidation, and the actor reads as unknown (latest 0, no events) until its next save."""

    def read_db(self, actor_id):
        with self.shared.lock:
            if actor_id in self.shared.unknown:
                return None, True
            return self.latest(actor_id), False

    def fill(self, actor_id, value):
        if value == 0:
            with self.shared.lock:
                self.shared.unknown.add(actor_id)

    def get_latest_version(self, actor_id):
        value, cached = self.read_db(actor_id)
        if cached:
            return 0
        time.sleep(0.0001)  # the round trip to the cache
        self.fill(actor_id, value)
        return value

    def get_events(self, actor_id, from_version):
        with self.shared.lock:
            if actor_id in self.shared.unknown:
                return []
            return self.select(actor_id, from_version)

    def append(self, event):
        super().append(event)
        self.shared.unknown.discard(event.actor_id)


def trigger_negative_fill():
    s = factory(NegativeCacheFillRace, NegativeState)()
    value, _ = s.read_db("a")
    s.save_event(ev("a", 1))
    s.fill("a", value)
    return s.get_latest_version("a") == 0 and s.get_events("a", 0) == []


# 6 ---------------------------------------------------------------------------------------------
class CasState(ShareState):
    def __init__(self):
        super().__init__()
        self.head: dict = {}  # actor -> the one snapshot kept (the highest)
        self.gave_up = 0


CAS_ATTEMPTS = 8


class SnapshotCasGivesUp(CorrectStore):
    """Redis WATCH/MULTI (or an etcd/Consul CAS) on one snapshot key per actor: read the stored
    snapshot, keep it if it is at least as high, else EXEC the new one unless the key changed.  The
    retry loop is bounded (8 attempts, as redis-py recipes and many repositories do) and, snapshots
    being "only an optimisation", gives up silently.  A writer loses a round only to a writer that
    just succeeded, so with 8 snapshot writers at once the highest is never starved; with more it
    can lose 8 rounds to lower snapshots and drop itself, leaving a lower snapshot as the latest."""

    def read_head(self, actor_id):
        with self.shared.lock:
            return self.shared.head.get(actor_id)

    def try_exec(self, snapshot, seen):
        with self.shared.lock:
            if self.shared.head.get(snapshot.actor_id) is not seen:
                return False  # WATCHed key changed: EXEC aborted
            self.shared.head[snapshot.actor_id] = copy.deepcopy(snapshot)
            return True

    def save_snapshot(self, snapshot):
        for _ in range(CAS_ATTEMPTS):
            seen = self.read_head(snapshot.actor_id)
            if seen is not None and seen.version >= snapshot.version:
                return
            time.sleep(0.0001)  # the round trip between GET and EXEC
            if self.try_exec(snapshot, seen):
                return
        self.shared.gave_up += 1  # logged at debug level

    def get_latest_snapshot(self, actor_id):
        with self.shared.lock:
            got = self.shared.head.get(actor_id)
            return copy.deepcopy(got) if got is not None else None


def trigger_snapshot_cas():
    s = factory(SnapshotCasGivesUp, CasState)()
    s.save_event(ev("a", 20))
    top = snap("a", 20)
    for version in range(1, CAS_ATTEMPTS + 1):  # each round, a lower snapshot's EXEC lands first
        seen = s.read_head("a")
        s.save_snapshot(snap("a", version))
        assert not s.try_exec(top, seen)
    # the writer of version 20 has now lost all its attempts: it gives up
    return s.get_latest_snapshot("a").version != 20


# 7 ---------------------------------------------------------------------------------------------
class ListenSlots32(ListenSlotsExhausted):
    """escapes6a's near cache kept coherent by LISTEN/NOTIFY, with a listener pool of 32 instead of
    16: spec section 6 says a store MUST allow 40 open handles, and the kit's test held 24 (plus
    the run's own) open at once before spec 3.2.1.  The 33rd handle open at once caches latest
    versions under a 5-second TTL and answers stale ones."""

    SLOTS = 32


def trigger_listen_slots_32():
    make = factory(ListenSlots32, ListenState)
    handles = [make() for _ in range(33)]
    handles[-1].get_latest_version("x")
    handles[0].save_event(ev("x", 1))
    return handles[-1].get_latest_version("x") == 0


# 8 ---------------------------------------------------------------------------------------------
PAGE = 100


class DescOffsetPages(CorrectStore):
    """Django: the event model's Meta.ordering is ['-version'] (newest first, for the admin and the
    "latest" queries), and get_events walks `Paginator(qs, 100)` page by page, each page its own
    `ORDER BY version DESC LIMIT 100 OFFSET n` query outside a transaction, then reverses the rows.
    A save that lands between two pages shifts every later page by one: the read returns the
    event at the page boundary twice.  Only a read of more than 100 events, made while a save of
    the same actor lands, shows it."""

    between_pages = staticmethod(lambda: time.sleep(0.0001))  # the next query's round trip

    def get_events(self, actor_id, from_version):
        rows, offset = [], 0
        while True:
            with self.shared.lock:  # ORDER BY version DESC LIMIT 100 OFFSET :offset
                stream = self.shared.events.get(actor_id, [])
                first = bisect.bisect_left(stream, from_version, key=lambda e: e.version)
                end = len(stream) - offset
                page = [copy.deepcopy(e) for e in reversed(stream[max(first, end - PAGE):max(first, end)])]
                last = end - PAGE <= first
            rows.extend(page)
            if last:
                return rows[::-1]
            offset += PAGE
            self.between_pages()


def trigger_desc_offset():
    s = factory(DescOffsetPages)()
    for version in range(1, 151):
        s.save_event(ev("a", version))
    s.between_pages = lambda: s.save_event(ev("a", 151)) if s.get_latest_version("a") == 150 else None
    versions = [e.version for e in s.get_events("a", 0)]
    return versions != sorted(set(versions))


# 9 ---------------------------------------------------------------------------------------------
SPARSE_JUMP = 16


class FarAheadSavesUnguarded(CorrectStore):
    """Two write paths, as stores that import streams keep: a save at most 16 above the head goes
    through the guarded `UPDATE heads SET v = :new WHERE actor = :a AND v = :seen` (atomic), a save
    further ahead (a replayed or imported stream keeping its source versions) through the bulk
    path: SELECT the head, compare, COPY the row and set the head, with no guard on what was read.
    One such save at a time is right, which is all the sequential gap tests (5 after 2, 5000 after
    nothing) make; two racing on one actor both win."""

    def check_and_append(self, event):
        with self.shared.lock:
            latest = self.latest(event.actor_id)
        if event.version - latest <= SPARSE_JUMP:
            return super().check_and_append(event)
        if self.is_conflict(event, latest):
            raise self.conflict(event, latest)
        self.between()
        with self.shared.lock:
            stream = self.shared.events.setdefault(event.actor_id, [])
            stream.append(copy.deepcopy(event))
            stream.sort(key=lambda e: e.version)

    between = staticmethod(lambda: time.sleep(0.0001))  # the COPY's round trip


def trigger_far_ahead():
    s = factory(FarAheadSavesUnguarded)()
    pending = [ev("a", 100, id="racing")]
    s.between = lambda: s.save_event(pending.pop()) if pending else None  # another writer gets in between
    s.save_event(ev("a", 100, id="first"))
    return [e.version for e in s.get_events("a", 0)] == [100, 100]


# 10 --------------------------------------------------------------------------------------------
class MixedMethods(CorrectStore):
    """Control: async saves (`async def`), sync get_events, and a plain `def` get_latest_version that
    returns a coroutine (an awaitable), as a store half-ported to asyncio is; all three forms are
    allowed by spec section 3.2 (a handle may mix sync and async methods)."""

    async def save_event(self, event):
        self.check_and_append(event)

    def get_latest_version(self, actor_id):
        return self._latest(actor_id)

    async def _latest(self, actor_id):
        await asyncio.sleep(0)
        with self.shared.lock:
            return self.latest(actor_id)

    async def save_snapshot(self, snapshot):
        CorrectStore.save_snapshot(self, snapshot)


# Controls --------------------------------------------------------------------------------------
class ConflictReadAfterRelease(CorrectStore):
    """The conflict's current_version is read again after the lock is released (the error is built
    in an `except` outside the transaction, with a fresh SELECT max): under concurrency it may be
    higher than the latest at the instant of rejection, but it is a latest version the actor had
    while the call was in flight, which section 6 allows."""

    def check_and_append(self, event):
        try:
            super().check_and_append(event)
        except VersionConflictError:
            time.sleep(0.0001)
            with self.shared.lock:
                latest = self.latest(event.actor_id)
            raise self.conflict(event, latest) from None


class UniqueIndexLoser(CorrectStore):
    """Checks the head without a lock, then INSERTs under a unique index on (actor, version) and a
    guard that nothing at or above the version exists; the loser of a race is refused by the index
    and reports the version that beat it (its own attempted version), which the winner wrote while
    the loser's call was in flight: a real latest version at some instant of the call."""

    def check_and_append(self, event):
        with self.shared.lock:
            latest = self.latest(event.actor_id)
        if self.is_conflict(event, latest):
            raise self.conflict(event, latest)
        time.sleep(0.0001)
        with self.shared.lock:
            stream = self.shared.events.get(event.actor_id, [])
            top = stream[-1].version if stream else 0
            if event.version <= top:
                clash = [e.version for e in stream if e.version >= event.version]
                raise self.conflict(event, clash[0] if event.version in clash else top)
            self.append(event)


class RetryBusyCorrectly(CorrectStore):
    """A save that finds the actor busy (a try-lock fails) backs off and tries again from the check
    (SQLITE_BUSY with a retry loop): slow under contention, never wrong."""

    def check_and_append(self, event):
        delay = 0.00005
        while not self.shared.lock.acquire(blocking=False):
            time.sleep(delay)
            delay = min(delay * 2, 0.002)
        try:
            latest = self.latest(event.actor_id)
            if self.is_conflict(event, latest):
                raise self.conflict(event, latest)
            self.append(event)
        finally:
            self.shared.lock.release()


class AsyncGroupCommitState(ShareState):
    def __init__(self):
        super().__init__()
        self.queue: list = []
        self.flusher = None


class AsyncGroupCommit:
    """Async group commit: every save joins a queue and awaits a future; one flusher task, started
    by the first waiting save, takes the whole queue after a turn of the event loop, checks and
    appends each save in order, and settles each future (conflicts with the latest at that point).
    Reads go straight to the data.  Correct: the queue is taken whole and replaced, never cleared
    after the batch."""

    def __init__(self, shared):
        self.inner = CorrectStore(shared)
        self.shared = shared

    async def _flush(self):
        await asyncio.sleep(0)
        shared = self.shared
        batch, shared.queue = shared.queue, []
        shared.flusher = None
        for event, future in batch:
            if future.cancelled():
                continue
            try:
                self.inner.check_and_append(event)
            except VersionConflictError as error:
                future.set_exception(error)
            else:
                future.set_result(None)

    async def save_event(self, event):
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.shared.queue.append((copy.deepcopy(event), future))
        if self.shared.flusher is None:
            self.shared.flusher = loop.create_task(self._flush())
        await future

    async def get_events(self, actor_id, from_version):
        return self.inner.get_events(actor_id, from_version)

    async def get_latest_version(self, actor_id):
        return self.inner.get_latest_version(actor_id)

    async def save_snapshot(self, snapshot):
        return self.inner.save_snapshot(snapshot)

    async def get_latest_snapshot(self, actor_id):
        return self.inner.get_latest_snapshot(actor_id)


def _group_commit_factory():
    shared = AsyncGroupCommitState()

    def make():
        return AsyncGroupCommit(shared)

    return make


# -----------------------------------------------------------------------------------------------
make_hot_key = factory(HotKeyThrottleAsConflict, HotKeyState)
make_async_hot_key = factory(AsyncHotKeyThrottleAsConflict, HotKeyState)
make_bucket_etag = factory(BucketEtagContention, BucketState)
make_statement_timeout = factory(StatementTimeoutRetryApplied, QueuedState)
make_lock_leak = factory(LockLeakOnRefusal, ActorLockState)
make_negative_fill = factory(NegativeCacheFillRace, NegativeState)
make_snapshot_cas = factory(SnapshotCasGivesUp, CasState)
make_listen_slots_32 = factory(ListenSlots32, ListenState)
make_desc_offset = factory(DescOffsetPages)
make_far_ahead = factory(FarAheadSavesUnguarded)

make_conflict_after_release = factory(ConflictReadAfterRelease)
make_unique_index_loser = factory(UniqueIndexLoser)
make_retry_busy = factory(RetryBusyCorrectly)
make_async_group_commit = _group_commit_factory()
make_mixed_methods = factory(MixedMethods)

TRIGGERS = {
    "make_hot_key": trigger_hot_key,
    "make_async_hot_key": trigger_async_hot_key,
    "make_bucket_etag": trigger_bucket_etag,
    "make_statement_timeout": trigger_statement_timeout,
    "make_lock_leak": trigger_lock_leak,
    "make_negative_fill": trigger_negative_fill,
    "make_snapshot_cas": trigger_snapshot_cas,
    "make_listen_slots_32": trigger_listen_slots_32,
    "make_desc_offset": trigger_desc_offset,
    "make_far_ahead": trigger_far_ahead,
}

BROKEN = {
    "make_hot_key": "ES-CONC-001",
    "make_async_hot_key": "ES-CONC-001",
    "make_bucket_etag": "ES-CONC-001",
    "make_statement_timeout": "ES-CONC-001",
    "make_lock_leak": "ES-REFUSE-001",
    "make_negative_fill": "ES-CONC-001",
    "make_snapshot_cas": "SS-SNAP-002",
    "make_listen_slots_32": "ES-HANDLE-001",
    "make_desc_offset": "ES-CONC-001",
    "make_far_ahead": "ES-CONC-001",
}

# Caught only in some runs, or in none: each needs a store call to stay inside the store for a
# while (a slow round trip), which an in-process store without I/O never does.
NOT_CAUGHT = {
    # A save waiting 2.5 s behind the lock: no call of the kit's holds a store's lock that long.
    "make_statement_timeout": "ES-CONC-001",
    # The highest snapshot writer must lose 8 compare-and-set rounds in a row, each to a lower
    # writer that just succeeded: 16 writers at once make it possible, not likely.
    "make_snapshot_cas": "SS-SNAP-002",
}

CONTROLS = ["make_conflict_after_release", "make_unique_index_loser", "make_retry_busy", "make_async_group_commit",
            "make_mixed_methods"]
