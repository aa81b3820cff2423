"""Concurrent optimistic writers: draw a plan, run it, record the history.

Every writer does what an aether client does — read the latest version, save
latest+1, learn from a conflict — in barrier-synchronised rounds, so that in
every round all writers hit the same actor within microseconds of each other.
A store whose check and append are not atomic lets two of them win the same
version in the very first rounds; the history checker then proves it.

The plan (who reads fresh, who writes from a stale view, which actor each
writer targets, which versions it skips, what the readers read) is drawn up
front from a seed, so a failing run can be replayed with the same plan.  The
same code runs writers as threads of this process or inside child processes.

Beyond one actor and next-version writers, a plan may spread writers over
several actors (a store that rewrites shared state loses another actor's
update, or reports a busy backend as a conflict), let writers skip versions
(a primary key on (actor, version) with ``SELECT max`` lets v6 land after v7),
save a snapshot after each acknowledged save (the highest must win), and add
readers that read in the same rounds (no read may show what later vanishes,
or a latest version without its event, or go back in time).
"""

from __future__ import annotations

import itertools
import random
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from .driver import DrivenHandle, StoreDriver, StoreMisbehaviour, StoreTimeout, ensure_import_path
from .errors import VersionConflictError, go_quote, seed_text
from .history import (ERROR, EVENTS, LATEST, OK, SAVE, UNKNOWN, EventsRead, HistoryRecorder, SnapshotCall,
                      content_digest)
from .model import INT64_MAX, ActorSnapshot, Event

__all__ = ["WriterPlan", "RunLog", "draw_plan", "prefill", "racing", "run_writers", "run_writer_process"]

# A writer that stops hearing from its peers (one of them hung in the store) gives up after this.
_BARRIER_TIMEOUT_FLOOR = 30.0


READ_KINDS = ("latest", "events", "snapshot")


@dataclass(frozen=True)
class WriterPlan:
    """What every writer (and reader) does in every round, fixed before anything runs."""

    actor_id: str
    run_id: str
    seed: int
    rounds: int
    # fresh[w][r]: writer w reads the latest version in round r (True), or writes
    # from what it last saw — its own last save or the conflict's current_version.
    fresh: tuple[tuple[bool, ...], ...]
    # Further actors; picks[w][r] indexes ``actors`` (empty: every writer on actor_id).
    other_actors: tuple[str, ...] = ()
    picks: tuple[tuple[int, ...], ...] = ()
    # steps[w][r]: how far above what it saw writer w saves (empty: always 1).
    steps: tuple[tuple[int, ...], ...] = ()
    # reads[k][r]: (kind, actor index) of reader k's read in round r; kind in READ_KINDS.
    reads: tuple[tuple[tuple[str, int], ...], ...] = ()
    # Each writer saves a snapshot at every version it wins.
    snapshots: bool = False

    @property
    def writers(self) -> int:
        return len(self.fresh)

    @property
    def readers(self) -> int:
        return len(self.reads)

    @property
    def actors(self) -> tuple[str, ...]:
        return (self.actor_id, *self.other_actors)

    def writers_slice(self, first: int, count: int) -> WriterPlan:
        """The plan of writers first..first+count-1 only, without readers (for a writer process)."""
        return replace(self, fresh=self.fresh[first:first + count], picks=self.picks[first:first + count],
                       steps=self.steps[first:first + count], reads=())


def draw_plan(
    actor_id: str, run_id: str, writers: int, rounds: int, seed: int, stale_share: float = 0.25, *,
    other_actors: tuple[str, ...] = (), skip_share: float = 0.0, far_share: float = 0.0, readers: int = 0,
    snapshots: bool = False,
) -> WriterPlan:
    """Draw a plan.  With other actors, half the rounds put every writer on one actor and the other
    half spread them out; ``skip_share`` of the saves skip one or two versions, and ``far_share`` of
    them 16 to 63 (a store may take another path for a save far ahead: a bulk import)."""
    rng = random.Random(seed)
    fresh = tuple(
        tuple(r == 0 or rng.random() >= stale_share for r in range(rounds)) for _ in range(writers)
    )
    count = 1 + len(other_actors)
    picks: tuple[tuple[int, ...], ...] = ()
    if other_actors:
        focus = [rng.randrange(count) if rng.random() < 0.5 else None for _ in range(rounds)]
        picks = tuple(tuple(f if f is not None else rng.randrange(count) for f in focus) for _ in range(writers))
    steps: tuple[tuple[int, ...], ...] = ()
    if skip_share or far_share:
        def step() -> int:
            # One draw decides the kind of step, so that plans without far steps replay as before.
            drawn = rng.random()
            if drawn < skip_share:
                return 1 + rng.randrange(1, 3)
            return 1 + rng.randrange(16, 64) if drawn < skip_share + far_share else 1

        steps = tuple(tuple(step() for _ in range(rounds)) for _ in range(writers))
    kinds = READ_KINDS if snapshots else READ_KINDS[:2]
    reads = tuple(tuple((rng.choice(kinds), rng.randrange(count)) for _ in range(rounds)) for _ in range(readers))
    return WriterPlan(actor_id=actor_id, run_id=run_id, seed=seed, rounds=rounds, fresh=fresh,
                      other_actors=other_actors, picks=picks, steps=steps, reads=reads, snapshots=snapshots)


class RunLog:
    """What a run recorded besides the save/latest history: events reads and snapshot calls."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.event_reads: list[EventsRead] = []
        self.snapshot_calls: list[SnapshotCall] = []
        # Conflicts with the right fields whose text is not the seed's (ES-ERR-002): a message worded
        # on another path (a conflict found only under the lock, say).
        self.wrong_texts: list[str] = []

    def add(self, item: EventsRead | SnapshotCall) -> None:
        with self._lock:
            (self.event_reads if isinstance(item, EventsRead) else self.snapshot_calls).append(item)

    def wrong_text(self, what: str) -> None:
        with self._lock:
            self.wrong_texts.append(what)


def _event(plan: WriterPlan, actor: str, label: str, round_no: int, version: int) -> Event:
    return Event(
        id=f"{plan.run_id}-{label}-r{round_no}",
        event_type="ConcurrentAppend",
        actor_id=actor,
        version=version,
        data={"writer": label, "round": round_no},
        timestamp=datetime.now(timezone.utc),
    )


def _snapshot(handle: DrivenHandle, actor: str, version: int, label: str, log: RunLog, clock: Any) -> None:
    invoked = clock()
    try:
        handle.save_snapshot(ActorSnapshot(actor_id=actor, version=version, state={"writer": label, "version": version},
                                           timestamp=datetime.now(timezone.utc)))
    except StoreTimeout:
        log.add(SnapshotCall(label, "save", actor, version, invoked, None, UNKNOWN))
        raise
    except StoreMisbehaviour:
        log.add(SnapshotCall(label, "save", actor, version, invoked, clock(), ERROR))
        return
    log.add(SnapshotCall(label, "save", actor, version, invoked, clock(), OK))


def _read_after_win(handle: DrivenHandle, actor: str, start: int, won: int, label: str, log: RunLog, clock: Any) -> bool:
    """Read the versions between what the writer saw and what it just won (False: the store hung).

    Its own save must be there, and nothing may land later below it: with writers skipping
    versions, a store that checks against ``SELECT max`` outside a lock lets a lower version
    commit after a higher one, and this read, made the instant the higher one is acknowledged,
    is the likeliest to see the hole.
    """
    invoked = clock()
    try:
        events = handle.get_events(actor, start)
    except StoreTimeout:
        return False
    except StoreMisbehaviour:
        return True  # a failed read shows nothing
    log.add(EventsRead(label, actor, start, won, tuple((e.version, e.id) for e in events), invoked, clock(),
                       tuple(events)))
    return True


def _write_rounds(
    handle: DrivenHandle,
    plan: WriterPlan,
    writer_no: int,
    label: str,
    barrier: Any,
    barrier_timeout: float,
    recorder: HistoryRecorder,
    log: RunLog,
    progress: RoundProgress,
) -> None:
    seen: dict[str, int] = {}
    for round_no, fresh in enumerate(plan.fresh[writer_no]):
        try:
            barrier.wait(barrier_timeout)
        except threading.BrokenBarrierError:
            return  # a peer is stuck in the store; its pending call is recorded as unknown
        try:
            if not _write_round(handle, plan, writer_no, label, round_no, fresh, seen, barrier, recorder, log):
                return
        finally:
            progress.finish(round_no)


def _write_round(handle: DrivenHandle, plan: WriterPlan, writer_no: int, label: str, round_no: int, fresh: bool,
                 seen: dict[str, int], barrier: Any, recorder: HistoryRecorder, log: RunLog) -> bool:
    """One writer's round: read the latest if the plan says so, save, read back, snapshot.  False when
    the store hung (the barrier is then broken)."""
    actor = plan.actors[plan.picks[writer_no][round_no]] if plan.picks else plan.actor_id
    step = plan.steps[writer_no][round_no] if plan.steps else 1
    if fresh or actor not in seen:
        op = recorder.invoke(label, LATEST, actor)
        try:
            seen[actor] = handle.get_latest_version(actor)
        except StoreTimeout:
            barrier.abort()
            return False
        except (StoreMisbehaviour, VersionConflictError) as error:
            op.error(str(error))
            return True
        op.ok(version=seen[actor])
    if seen[actor] + step > INT64_MAX:
        # The store put the actor at the top of int64 (a version shared with another actor, say):
        # there is no version to save above it.  The history holds that answer, for the checker.
        return True
    event = _event(plan, actor, label, round_no, seen[actor] + step)
    op = recorder.invoke(
        label, SAVE, actor, version=event.version, event_id=event.id, digest=content_digest(event)
    )
    try:
        handle.save_event(event)
    except VersionConflictError as conflict:
        if conflict.actor_id != actor or conflict.attempted_version != event.version:
            op.error(f"VersionConflictError with wrong fields: {conflict!r}")
        else:
            op.conflict(conflict.current_version)
            seen[actor] = conflict.current_version
            expected = seed_text(actor, event.version, conflict.current_version)
            if str(conflict) != expected:
                log.wrong_text(f"{label} saving version {event.version} of {go_quote(actor)}: expected error text "
                               f"{expected!r}, store's error text is {str(conflict)[:500]!r}")
        return True
    except StoreTimeout:
        barrier.abort()
        return False
    except StoreMisbehaviour as error:
        op.error(str(error))
        return True
    op.ok()
    before, seen[actor] = seen[actor], event.version
    if plan.steps and not _read_after_win(handle, actor, before + 1, event.version, label, log, recorder.now):
        barrier.abort()
        return False
    if plan.snapshots:
        try:
            _snapshot(handle, actor, event.version, label, log, recorder.now)
        except StoreTimeout:
            barrier.abort()
            return False
    return True


# Latest-then-events reads a reader repeats in one round while writers of that round are still
# writing: the window in which a store shows a latest version without its event lasts only as long
# as a save, and more reads inside it make catching it a matter of course rather than of luck.
REREADS_PER_ROUND = 16


class RoundProgress:
    """How many writers have finished each round, so that readers read on while some still write."""

    def __init__(self, writers: int) -> None:
        self.writers = writers
        self._finished: dict[int, int] = {}
        self._lock = threading.Lock()

    def finish(self, round_no: int) -> None:
        with self._lock:
            self._finished[round_no] = self._finished.get(round_no, 0) + 1

    def writing(self, round_no: int) -> bool:
        return self._finished.get(round_no, 0) < self.writers


def _read_rounds(
    handle: DrivenHandle,
    plan: WriterPlan,
    reader_no: int,
    barrier: Any,
    barrier_timeout: float,
    recorder: HistoryRecorder,
    log: RunLog,
    progress: RoundProgress,
) -> None:
    """A reader: in each round one read of the plan's kind; events are read from the latest it saw."""
    label = f"r{reader_no}"
    actors = plan.actors
    seen: dict[str, int] = {}
    clock = recorder.now
    for round_no, (kind, index) in enumerate(plan.reads[reader_no]):
        try:
            barrier.wait(barrier_timeout)
        except threading.BrokenBarrierError:
            return
        actor = actors[index]
        try:
            if kind == "snapshot":
                invoked = clock()
                try:
                    got = handle.get_latest_snapshot(actor)
                except StoreTimeout:
                    log.add(SnapshotCall(label, "read", actor, None, invoked, None, UNKNOWN))
                    raise
                log.add(SnapshotCall(label, "read", actor, None if got is None else got.version, invoked, clock(), OK))
            elif kind == "latest":
                _latest_then_events(handle, actor, label, seen, recorder, log)
                for _ in range(REREADS_PER_ROUND):
                    if not progress.writing(round_no):
                        break
                    _latest_then_events(handle, actor, label, seen, recorder, log)
            else:
                required = seen.get(actor, 0)
                top = _read_events(handle, actor, max(0, required - 2), required, label, recorder, log)
                seen[actor] = max(required, top)
        except StoreTimeout:
            barrier.abort()
            return
        except (StoreMisbehaviour, VersionConflictError):
            continue  # a failed read shows nothing; the writers' history carries the verdict


def _latest_then_events(handle: DrivenHandle, actor: str, label: str, seen: dict[str, int],
                        recorder: HistoryRecorder, log: RunLog) -> None:
    op = recorder.invoke(label, LATEST, actor)
    try:
        latest = handle.get_latest_version(actor)
    except StoreTimeout:
        raise  # left pending: it never returned
    except StoreMisbehaviour as error:
        op.error(str(error))
        return
    op.ok(version=latest)
    seen[actor] = max(seen.get(actor, 0), latest)
    if latest > 0:
        # At once, what a client reads next: the events from the version it was just told.  A store
        # that publishes the latest version before the event (a counter, then the row; a replica
        # that lags the primary) shows the gap only to a read this close.
        _read_events(handle, actor, latest, latest, label, recorder, log)


def _read_events(handle: DrivenHandle, actor: str, start: int, required: int, label: str,
                 recorder: HistoryRecorder, log: RunLog) -> int:
    """One get_events from ``start`` by a reader that had seen ``required`` as the latest; the highest
    version it returned (0 for none)."""
    clock = recorder.now
    invoked = clock()
    events = handle.get_events(actor, start)
    completed = clock()
    pairs = tuple((e.version, e.id) for e in events)
    log.add(EventsRead(label, actor, start, required, pairs, invoked, completed, tuple(events)))
    top = max((version for version, _ in pairs), default=0)
    if pairs or start == 0:
        # Recorded in the history too: the highest version read (0 for none from version 0) is the
        # latest at the read's instant.  Recorded once answered: an empty read from above 0 says
        # nothing of the latest, and is check_event_reads' to judge.
        recorder.extend([dict(index=0, writer=label, kind=EVENTS, actor_id=actor, invoke_ns=invoked,
                              complete_ns=completed, outcome=OK, version=top)])
    return top


# Seconds between the GIL hand-overs while writers race (sys.setswitchinterval).
RACE_SWITCH_INTERVAL = 5e-6


def prefill(handle: DrivenHandle, plan: WriterPlan, recorder: HistoryRecorder, events: int) -> None:
    """Save versions 1 to ``events`` of each of the plan's actors one at a time, recorded, before the
    writers start: a stream of hundreds of events is read in pages while the writers' saves land."""
    for number, actor in enumerate(plan.actors):
        for version in range(1, events + 1):
            # An id of its own for each actor's event: a store may refuse a reused id (ES-ID-001).
            event = _event(plan, actor, f"prefill{number}-{version}", 0, version)
            op = recorder.invoke("prefill", SAVE, actor, version=version, event_id=event.id,
                                 digest=content_digest(event))
            try:
                handle.save_event(event)
            except VersionConflictError as conflict:
                op.conflict(conflict.current_version)
            except StoreMisbehaviour as error:
                op.error(str(error))
            else:
                op.ok()


def run_writers(
    handles: list[DrivenHandle],
    plan: WriterPlan,
    recorder: HistoryRecorder,
    *,
    label_prefix: str = "",
    barrier: Any = None,
    call_timeout: float,
    log: RunLog | None = None,
) -> RunLog:
    """Run the plan's writers and readers as threads, writer i on handles[i % len(handles)] and reader k
    on handles[(k + 1) % len(handles)]; wait for all.  Returns what the readers and snapshots recorded."""
    log = log if log is not None else RunLog()
    barrier = barrier or threading.Barrier(plan.writers + plan.readers)
    barrier_timeout = max(_BARRIER_TIMEOUT_FLOOR, 3 * call_timeout)
    progress = RoundProgress(plan.writers)
    threads = [
        threading.Thread(
            target=_write_rounds,
            args=(handles[w % len(handles)], plan, w, f"{label_prefix}w{w}", barrier, barrier_timeout, recorder, log,
                  progress),
            name=f"aether-writer-{label_prefix}{w}",
            daemon=True,  # a writer stuck in a hung store must not keep the run alive
        )
        for w in range(plan.writers)
    ] + [
        threading.Thread(
            target=_read_rounds,
            args=(handles[(k + 1) % len(handles)], plan, k, barrier, barrier_timeout, recorder, log, progress),
            name=f"aether-reader-{label_prefix}{k}",
            daemon=True,
        )
        for k in range(plan.readers)
    ]
    rounds_over = threading.Event()
    # With readers in the plan, one more client reads whole streams for as long as the rounds run.
    side_reads = [threading.Thread(target=_read_whole_streams,
                                   args=(handles[-1], plan.actors, f"{label_prefix}side", rounds_over, recorder, log),
                                   name=f"aether-side-reader-{label_prefix}", daemon=True)] if plan.readers else []
    with racing():
        for thread in threads + side_reads:
            thread.start()
        # Every call is bounded by call_timeout and every barrier wait by barrier_timeout.
        deadline = plan.rounds * 3 * (call_timeout + 1) + barrier_timeout
        for thread in threads:
            thread.join(deadline)
        rounds_over.set()
        for thread in side_reads:
            thread.join(call_timeout + 1)
    return log


def _read_whole_streams(handle: DrivenHandle, actors: tuple[str, ...], label: str, rounds_over: threading.Event,
                        recorder: HistoryRecorder, log: RunLog) -> None:
    """Read the actors' whole streams, one after another, until the rounds are over.  A store under
    load is never idle: these long reads keep another call inside the store while the writers and
    readers make theirs, so a replica or cache that lags only while calls overlap (and catches up the
    moment the store is idle) shows the lag to them.  Each read is recorded and checked like the
    readers' (a stream read in pages while saves land, newest first with an offset, shows the event
    at a page boundary twice); a read that fails ends them, since the recorded calls show why."""
    for actor in itertools.cycle(actors):
        if rounds_over.is_set():
            return
        try:
            _read_events(handle, actor, 0, 0, label, recorder, log)
        except (StoreMisbehaviour, StoreTimeout, VersionConflictError):
            return


_racing_lock = threading.Lock()
_racing_runs = 0
_switch_interval_before = 0.0


@contextmanager
def racing() -> Iterator[None]:
    """Python hands the GIL over every 5 ms by default, longer than a whole call of an in-process
    store: racing calls would then almost never be inside the store at the same time.  Handing it
    over every 5 µs interleaves them inside their calls, which widens every race window
    (20 µs caught a replica lagging only while calls overlap in 15 runs of 20, 5 µs in 18).  Runs of
    writers may overlap (a fault run's watchers): the last one out restores the interval."""
    global _racing_runs, _switch_interval_before
    with _racing_lock:
        if _racing_runs == 0:
            _switch_interval_before = sys.getswitchinterval()
            sys.setswitchinterval(RACE_SWITCH_INTERVAL)
        _racing_runs += 1
    try:
        yield
    finally:
        with _racing_lock:
            _racing_runs -= 1
            if _racing_runs == 0:
                sys.setswitchinterval(_switch_interval_before)


def run_writer_process(
    spec: str,
    sys_path: list[str],
    plan: WriterPlan,
    process_no: int,
    first_writer: int,
    threads: int,
    barrier: Any,
    call_timeout: float,
    results: Any,
) -> None:
    """Entry point of one writer process (multiprocessing, spawn): its own handle, its own threads."""
    for entry in reversed(sys_path):
        ensure_import_path(entry)
    recorder = HistoryRecorder()
    outcome: dict[str, Any] = {"process": process_no}
    try:
        driver = StoreDriver(spec, timeout=call_timeout)
        handle = driver.new_handle()
        sub_plan = plan.writers_slice(first_writer, threads)
        run_writers([handle], sub_plan, recorder, label_prefix=f"p{process_no}", barrier=barrier,
                    call_timeout=call_timeout)
        driver.close()
    except Exception as error:  # reported to the parent, which fails the test with it
        outcome["error"] = f"{type(error).__name__}: {error}"
        barrier.abort()
    outcome["operations"] = [op.to_dict() for op in recorder.operations()]
    results.put(outcome)
