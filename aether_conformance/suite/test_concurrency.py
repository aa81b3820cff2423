"""ES-CONC-*: concurrent optimistic writers on one actor, checked from the recorded history.

Each test draws its plan first (seeded), runs the writers, then reads the
final stream and checks the whole history.  What the check detects does not
depend on luck: all writers of a round start from one barrier, so a store
whose check and append are not atomic lets several of them win a version in
the first rounds.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import sys
import threading
import time
from pathlib import Path

import pytest

from ..html_report import history_artifact
from ..plugin import STATISTICS_KEY, run_key
from ..driver import StoreDriver, StoreMisbehaviour, StoreRaised, StoreTimeout
from ..errors import VersionConflictError
from ..history import (HistoryRecorder, check_event_reads, check_history, check_snapshot_calls, history_to_json,
                       stored_events)
from ..writers import draw_plan, prefill, racing, run_writer_process, run_writers
from .support import SEQUENTIAL_RULES, check_saves_made_at_once, diff_event, drop, heap_frozen, new_event, new_snapshot, q, save_ok, versions, violated


def _verdict(req_id, store, plan, recorder, request, how, log=None):
    """Check the recorded history; record the load the test applied (even when it fails) and keep
    the history in the artifacts directory, for the HTML report's timeline."""
    operations = recorder.operations()
    finals = {actor: store.get_events(actor, 0) for actor in plan.actors}
    streams = {actor: stored_events(events) for actor, events in finals.items()}
    result = check_history(operations, streams)
    read_violations = check_event_reads(log.event_reads, streams) if log else []
    snapshot_calls = log.snapshot_calls if log else []
    snapshot_violations = []
    if plan.snapshots:
        latest = {actor: store.get_latest_snapshot(actor) for actor in plan.actors}
        snapshot_violations = check_snapshot_calls(snapshot_calls, {a: s and s.version for a, s in latest.items()})
    saves = [op for op in operations if op.kind == "save"]
    stats = {
        "save_attempts": len(saves),
        "acknowledged_saves": sum(op.outcome == "ok" for op in saves),
        "conflicts": sum(op.outcome == "conflict" for op in saves),
        "errors": sum(op.outcome == "error" for op in saves) + sum(c.outcome == "error" for c in snapshot_calls),
        "unknown": sum(op.outcome == "unknown" for op in operations) + sum(c.outcome == "unknown" for c in snapshot_calls),
        "concurrent_reads": sum(op.kind != "save" for op in operations) + len(snapshot_calls),
    }
    request.node.user_properties.append((STATISTICS_KEY, stats))
    artifacts = request.config.stash[run_key].artifacts
    if artifacts:
        kept = Path(artifacts) / "histories" / f"{_file_name(request.node.nodeid)}.json"
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_text(json.dumps(history_artifact(request.node.nodeid, req_id, plan, operations, result)))
    wrong_texts = log.wrong_texts if log else []
    if (result.ok and not read_violations and not snapshot_violations and not wrong_texts and not stats["errors"]
            and not stats["unknown"]):
        return
    path = (Path(artifacts) if artifacts else request.getfixturevalue("tmp_path_factory").mktemp("aether-history")) \
        / "histories" / "full" / f"{_file_name(request.node.nodeid)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "plan": {"actors": list(plan.actors), "seed": plan.seed, "writers": plan.writers, "readers": plan.readers,
                 "rounds": plan.rounds},
        "operations": history_to_json(operations),
        "event_reads": [[r.reader, r.actor_id, r.from_version, r.required, r.events, r.invoke_ns, r.complete_ns]
                        for r in (log.event_reads if log else [])],
        "snapshot_calls": [[c.caller, c.kind, c.actor_id, c.version, c.invoke_ns, c.complete_ns, c.outcome]
                           for c in snapshot_calls],
    }))
    actors = q(plan.actor_id) if len(plan.actors) == 1 else f"{len(plan.actors)} actors ({', '.join(map(q, plan.actors))})"
    readers = f" and {plan.readers} readers" if plan.readers else ""
    where = f"{how}, plan seed {plan.seed}; full history in {path}"
    doing = f"{plan.writers} writers{readers} on {actors} ({where})"
    if not result.ok:
        violated(req_id, f"{doing}: {result.explain()}")
    if read_violations:
        more = f" (and {len(read_violations) - 1} more)" if len(read_violations) > 1 else ""
        violated(req_id, f"{doing}: {read_violations[0].explanation}{more}")
    if snapshot_violations:
        violated("SS-SNAP-002", f"{doing}: {snapshot_violations[0].explanation}")
    if wrong_texts:
        # Named ES-ERR-002 but not marked with it: a race test charges a misbehaviour its failures
        # name to all of its requirements, which would count a read out of order against the text.
        # The report charges this to ES-ERR-002 when its own tests fail too, else to this test's.
        more = f" (and {len(wrong_texts) - 1} more)" if len(wrong_texts) > 1 else ""
        violated("ES-ERR-002", f"{doing}: {wrong_texts[0]}{more}")
    failures = [op for op in operations if op.outcome in ("error", "unknown")]
    if not failures:
        violated(req_id, f"{doing}: {stats['errors']} snapshot save(s) failed and {stats['unknown']} never returned")
    first = failures[0]
    violated(
        req_id,
        f"{doing}: {stats['errors']} store call(s) failed and {stats['unknown']} never returned; first: "
        f"{first.writer} {first.kind} {'v' + str(first.version) if first.version is not None else ''}: "
        f"{first.detail or 'no answer'}",
    )


def _file_name(nodeid: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in nodeid.rpartition("::")[2])[:120]


def _seed() -> int:
    return random.SystemRandom().randrange(2**32)


@pytest.mark.presupposes(*SEQUENTIAL_RULES)
@pytest.mark.requirement("ES-CONC-001")
def test_concurrent_writers_on_one_handle(store, fresh_actor, aether_profile, request):
    profile = aether_profile
    plan = draw_plan(fresh_actor("race-one-handle"), f"run{_seed()}", profile.writers, profile.rounds, _seed())
    recorder = HistoryRecorder()
    log = run_writers([store], plan, recorder, call_timeout=store.driver.timeout)
    how = f"{'asyncio tasks' if store.is_async else 'threads'} sharing {store.name}"
    _verdict("ES-CONC-001", store, plan, recorder, request, how, log)


@pytest.mark.presupposes(*SEQUENTIAL_RULES, "ES-HANDLE-001")
@pytest.mark.requirement("ES-CONC-001")
def test_concurrent_writers_on_many_handles(store, aether_driver, fresh_actor, aether_profile, request):
    profile = aether_profile
    handles = [store] + [aether_driver.new_handle() for _ in range(min(profile.writers, 4) - 1)]
    plan = draw_plan(fresh_actor("race-many-handles"), f"run{_seed()}", profile.writers, profile.rounds, _seed())
    recorder = HistoryRecorder()
    log = run_writers(handles, plan, recorder, call_timeout=store.driver.timeout)
    how = f"{'asyncio tasks' if store.is_async else 'threads'} over {len(handles)} handles"
    _verdict("ES-CONC-001", store, plan, recorder, request, how, log)


@pytest.mark.presupposes(*SEQUENTIAL_RULES, "ES-HANDLE-001", "ES-CONC-001")
@pytest.mark.requirement("ES-CONC-002")
def test_concurrent_writer_processes(store, fresh_actor, aether_profile, request):
    profile = aether_profile
    processes, threads = profile.processes, profile.threads_per_process
    plan = draw_plan(fresh_actor("race-processes"), f"run{_seed()}", processes * threads, profile.process_rounds, _seed())
    context = multiprocessing.get_context("spawn")  # fork would copy locks held by other threads
    barrier, results = context.Barrier(processes * threads), context.Queue()
    timeout = store.driver.timeout
    children = [
        context.Process(
            target=run_writer_process,
            args=(store.driver.spec, [os.getcwd(), *sys.path], plan, p, p * threads, threads, barrier, timeout, results),
            name=f"aether-writer-process-{p}",
            daemon=True,
        )
        for p in range(processes)
    ]
    for child in children:
        child.start()
    recorder = HistoryRecorder()
    deadline = time.monotonic() + 60 + plan.rounds * 2 * (timeout + 1)
    outcomes = []
    while len(outcomes) < processes and time.monotonic() < deadline:
        try:
            outcomes.append(results.get(timeout=1.0))
        except Exception:  # queue.Empty: keep waiting unless every child has died
            if not any(child.is_alive() for child in children) and results.empty():
                break
    for child in children:
        child.join(5)
        if child.is_alive():
            child.kill()
    if len(outcomes) < processes:
        violated("ES-CONC-002", f"only {len(outcomes)} of {processes} writer processes reported back "
                                f"(exit codes {[c.exitcode for c in children]}); the store hung or crashed a writer")
    for outcome in outcomes:
        if "error" in outcome:
            violated("ES-CONC-002", f"writer process {outcome['process']} could not run: {outcome['error']}")
        recorder.extend(outcome["operations"])
    how = f"{processes} processes x {threads} threads, one handle per process"
    _verdict("ES-CONC-002", store, plan, recorder, request, how)


@pytest.mark.presupposes(*SEQUENTIAL_RULES, "ES-HANDLE-001")
@pytest.mark.requirement("ES-CONC-001")
def test_writers_and_readers_on_several_actors(store, aether_driver, fresh_actor, aether_profile, request):
    # Writers spread over three actors or piled on one, some skipping versions, while readers read
    # latest versions and events: cross-actor lost updates, a busy backend reported as a conflict,
    # a version landing below one already visible, and reads that vanish or go back all show here.
    # The actors start with 250 events each, so that whole-stream reads span pages of 100 while
    # the saves land (pages newest first with an offset shift when one does).
    profile = aether_profile
    handles = [store, aether_driver.new_handle()]
    actors = (fresh_actor("spread"), fresh_actor("spread"), fresh_actor("spread"))
    plan = draw_plan(actors[0], f"run{_seed()}", profile.writers, max(60, profile.rounds // 2), _seed(),
                     other_actors=actors[1:], skip_share=0.3, readers=2)
    recorder = HistoryRecorder()
    prefill(store, plan, recorder, 250)
    log = run_writers(handles, plan, recorder, call_timeout=store.driver.timeout)
    how = f"{'asyncio tasks' if store.is_async else 'threads'} over {len(handles)} handles, versions skipped"
    _verdict("ES-CONC-001", store, plan, recorder, request, how, log)


@pytest.mark.presupposes(*SEQUENTIAL_RULES, "ES-HANDLE-001")
@pytest.mark.requirement("ES-CONC-001")
def test_first_saves_racing_reads_of_new_actors_stay_seen(store, other_store, fresh_actor):
    # For each of 200 new actors, one handle saves version 1 while another reads the actor's latest
    # version, both let go at once: afterwards both handles read version 1.  A cache that remembers
    # unknown actors, and fills that entry after its read without a guard, sets it over the save's
    # invalidation: the actor reads as unknown until its next save.
    actors = [fresh_actor("first") for _ in range(200)]
    barrier = threading.Barrier(2)
    timeout = max(60.0, 3 * store.driver.timeout)
    failures: list[str] = []

    def each(call) -> None:
        for actor in actors:
            try:
                barrier.wait(timeout)
                call(actor)
            except threading.BrokenBarrierError:
                return
            except (StoreMisbehaviour, VersionConflictError) as error:
                failures.append(f"{q(actor)}: {error}")
                barrier.abort()
                return

    threads = [threading.Thread(target=each, args=(lambda a: store.save_event(new_event(a, 1)),), daemon=True),
               threading.Thread(target=each, args=(other_store.get_latest_version,), daemon=True)]
    with racing():
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    doing = f"version 1 of each of {len(actors)} new actors saved through one handle while another read its latest"
    if failures:
        violated("ES-CONC-001", f"{doing}: {failures[0]}")
    for actor in actors:
        for handle in (store, other_store):
            latest, got = handle.get_latest_version(actor), versions(handle.get_events(actor, 0))
            if (latest, got) != (1, [1]):
                violated("ES-CONC-001", f"{doing}: afterwards {handle.name} reads latest {latest} and versions {got} "
                                        f"of {q(actor)}; expected 1 and [1]")


# More writers at once than a partition or a lock table serves before it throttles (16 for many).
BURST_WRITERS = 32


# Rounds of the pile-up below: in a round the saves pile up behind the read in about half the runs
# on a busy machine (an in-process store without I/O), so twelve rounds make a miss unlikely.
PILE_UP_ROUNDS = 12
PILE_UP_STREAM = 500  # events before the first round: the longer a read, the more saves meet it


@pytest.mark.presupposes(*SEQUENTIAL_RULES, "ES-HANDLE-001")
@pytest.mark.requirement("ES-CONC-001")
def test_saves_piling_up_behind_a_long_read_conflict_only_below_the_latest(store, other_store, fresh_actor):
    # 32 threads save the next 32 versions of one actor at once, while another handle reads its
    # whole stream (500 events and up) again and again: a read that holds the actor (a lock, a partition's
    # throughput) keeps every save in flight at once.  A partition that throttles beyond 16 writes
    # in flight, with the throttle mapped to a conflict, refuses a version above the latest; and
    # what was acknowledged must be what is stored.
    actor = fresh_actor("pile-up")
    for version in range(1, PILE_UP_STREAM + 1):
        save_ok("ES-CONC-001", store, new_event(actor, version), context=" while preparing the stream")
    latest, failures = PILE_UP_STREAM, []
    how = f"{BURST_WRITERS} threads saving the next {BURST_WRITERS} versions of {q(actor)} at once while " \
          f"{other_store.name} read its whole stream"
    for round_no in range(PILE_UP_ROUNDS):
        saves = [new_event(actor, latest + n) for n in range(1, BURST_WRITERS + 1)]
        outcomes: list = [None] * len(saves)
        barrier, writing, read_once = threading.Barrier(len(saves)), threading.Event(), threading.Event()

        def save(n: int) -> None:
            barrier.wait()
            try:
                store.save_event(saves[n])
            except (StoreMisbehaviour, VersionConflictError) as error:
                outcomes[n] = error

        def read() -> None:
            # Reading from before the saves start until they are all answered: the saves meet a
            # read in progress, and the reader takes the actor again as soon as it lets go.
            try:
                while writing.is_set():
                    try:
                        other_store.get_events(actor, 1)
                    except StoreMisbehaviour as error:
                        failures.append(f"a read failed: {error}")
                        writing.clear()
                    read_once.set()
            finally:
                read_once.set()  # whatever ended the reader, the saves do not wait for it

        writing.set()
        threads = [threading.Thread(target=save, args=(n,), daemon=True) for n in range(len(saves))]
        reader = threading.Thread(target=read, daemon=True)
        with racing():
            reader.start()
            read_once.wait()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            writing.clear()
            reader.join()
        if failures:
            violated("ES-CONC-001", f"{how}, round {round_no + 1}: {failures[0]}")
        stored = check_saves_made_at_once(store, f"{how}, round {round_no + 1}", saves, outcomes, above=latest)
        latest = max(stored, default=latest)


@pytest.mark.presupposes(*SEQUENTIAL_RULES, "ES-HANDLE-001")
@pytest.mark.requirement("ES-CONC-001")
def test_a_burst_of_writers_on_actors_that_hash_alike(store, aether_driver, fresh_actor, request):
    # 32 writers at once, half the rounds all on one actor and half spread over ids whose CRC-32 or
    # Java hashCode are equal after the common prefix; a quarter of the saves jump 16 to 63 versions
    # ahead.  A throttled write (HTTP 429) is no conflict, nor is a failed If-Match on a row that
    # two actors of one hash bucket share, and a path for saves far ahead must check like any other.
    prefix = fresh_actor("burst")
    actors = tuple(f"{prefix}{tail}" for tail in ("plumless", "buckeroo", "Aa", "BB"))
    plan = draw_plan(actors[0], f"run{_seed()}", BURST_WRITERS, 12, _seed(), other_actors=actors[1:],
                     skip_share=0.1, far_share=0.25, readers=2)
    recorder = HistoryRecorder()
    log = run_writers([store, aether_driver.new_handle()], plan, recorder, call_timeout=store.driver.timeout)
    how = (f"{'asyncio tasks' if store.is_async else 'threads'} over 2 handles, actors with equal CRC-32 and "
           "hashCode, saves up to 63 versions ahead")
    _verdict("ES-CONC-001", store, plan, recorder, request, how, log)



# Rounds of two saves sharing an event id: both saves start from one barrier, so in most rounds
# each has read the stream before either appends.
SAME_ID_ROUNDS = 16


@pytest.mark.presupposes(*SEQUENTIAL_RULES, "ES-HANDLE-001")
@pytest.mark.requirement("ES-CONC-001")
@pytest.mark.parametrize("step", [1, 40], ids=["next-version", "40-ahead"])
def test_two_saves_of_one_event_id_at_one_version_race_to_one_winner(store, other_store, fresh_actor, step):
    # Two handles save the same version of one actor at once, with the same event id (two instances
    # handling one command, ids derived from the command) but different data.  One save wins; the
    # other is a conflict (or, where a store refuses reused event ids, a ValueError that stored
    # nothing).  An append that treats a repeated event id after a stale read as an idempotent
    # retry (EventStoreDB) acknowledges both, and the actor holds only the first one's data.  Each
    # round saves the next version, or one 40 ahead: a store may take an unguarded bulk-import path
    # for saves far ahead of the head.
    actor, token = fresh_actor("same-id"), fresh_actor("cmd")
    how = (f"two handles saving one version of {q(actor)} at once with one event id and different data"
           + (f", each round {step} versions ahead of the last" if step > 1 else ""))
    for version in range(step, step * SAME_ID_ROUNDS + 1, step):
        pair = [new_event(actor, version, id=f"{token}/{version}", data={"writer": writer, "version": version})
                for writer in (0, 1)]
        outcomes: list = [None, None]
        barrier = threading.Barrier(2)

        def save(writer: int, handle) -> None:
            barrier.wait()
            try:
                handle.save_event(pair[writer])
            except (StoreMisbehaviour, VersionConflictError) as error:
                outcomes[writer] = error

        threads = [threading.Thread(target=save, args=(writer, handle), daemon=True)
                   for writer, handle in enumerate((store, other_store))]
        with racing():
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        won = [writer for writer in (0, 1) if outcomes[writer] is None]
        for writer, outcome in enumerate(outcomes):
            refused_cleanly = isinstance(outcome, StoreRaised) and isinstance(outcome.original, ValueError)
            if outcome is not None and not isinstance(outcome, VersionConflictError) and not refused_cleanly:
                violated("ES-CONC-001", f"{how}, version {version}: the save of writer {writer} failed other than "
                                        f"with a VersionConflictError or a ValueError: {outcome}")
        if len(won) == 2:
            violated("ES-CONC-001", f"{how}, version {version}: both saves were acknowledged; expected one to win "
                                    "and the other to be refused")
        if not won:
            violated("ES-CONC-001", f"{how}, version {version}: neither save was acknowledged ({outcomes[0]!s:.300} / "
                                    f"{outcomes[1]!s:.300}); expected one to win")
        stored = store.get_events(actor, version)
        if len(stored) != 1 or stored[0].version != version or diff_event(pair[won[0]], stored[0]):
            got = [(e.version, e.id, e.data) for e in stored]
            violated("ES-CONC-001", f"{how}, version {version}: writer {won[0]}'s save (data {pair[won[0]].data}) "
                                    f"was the one acknowledged; the actor then holds {got}"[:2000])


@pytest.mark.presupposes(*SEQUENTIAL_RULES, "ES-CONC-001", "SS-SNAP-001")
@pytest.mark.requirement("SS-SNAP-002", "ES-CONC-001")
def test_concurrent_snapshot_writers_keep_the_highest(snapshot_store, fresh_actor, aether_profile, request):
    # Every acknowledged save is followed by a snapshot at its version, from writers racing on two
    # actors: a read-compare-write of the latest snapshot lets a lower version overwrite a higher one.
    store = snapshot_store
    profile = aether_profile
    actors = (fresh_actor("snapshots"), fresh_actor("snapshots"))
    plan = draw_plan(actors[0], f"run{_seed()}", min(profile.writers, 6), max(20, profile.rounds // 4), _seed(),
                     other_actors=actors[1:], skip_share=0.2, readers=2, snapshots=True)
    recorder = HistoryRecorder()
    log = run_writers([store], plan, recorder, call_timeout=store.driver.timeout)
    how = f"{'asyncio tasks' if store.is_async else 'threads'} saving a snapshot after every win"
    _verdict("ES-CONC-001", store, plan, recorder, request, how, log)


CHURNED_HANDLES = 16


@pytest.mark.presupposes(*SEQUENTIAL_RULES)
@pytest.mark.requirement("ES-HANDLE-001", "ES-CONC-001")
def test_handles_created_and_dropped_during_writes(store, fresh_actor, aether_profile, request):
    # While writers race, new handles come and go (made from the factory in a driver of their own,
    # closed, dropped and garbage-collected): each must see every acknowledged save, and dropping
    # one must not take shared state (a pool, a cache, a connection) away from the others.
    profile = aether_profile
    plan = draw_plan(fresh_actor("churn"), f"run{_seed()}", min(profile.writers, 4), max(20, profile.rounds // 4),
                     _seed())
    recorder = HistoryRecorder()
    writers_done = threading.Event()
    stalled: list[str] = []

    def churn():
        # Handles keep coming for as long as the writers write, and at least CHURNED_HANDLES of them:
        # a pool of up to CHURNED_HANDLES // 2 slots hands each slot out again after saves it missed.
        # A handle that hangs ends the churn: each next one would wait out another timeout.
        number = 0
        while number < CHURNED_HANDLES or not writers_done.is_set():
            number += 1
            with heap_frozen():  # the handle is among the few objects the collection looks at
                held = [StoreDriver(store.driver.spec, timeout=store.driver.timeout)]
                op = recorder.invoke(f"new-handle-{number}", "latest", plan.actor_id)
                try:
                    latest = held[0].new_handle().get_latest_version(plan.actor_id)
                except StoreTimeout as error:
                    op.error(error)
                    return
                except Exception as error:  # recorded: the verdict reports it with its requirement
                    op.error(error)
                else:
                    op.ok(version=latest)
                finally:
                    held[0].close()
                if not drop(held, store.driver.timeout):
                    stalled.append(f"new-handle-{number}")
                    return
            time.sleep(0.01)

    churner = threading.Thread(target=churn, name="aether-handle-churn", daemon=True)
    churner.start()
    try:
        run_writers([store], plan, recorder, call_timeout=store.driver.timeout)
    finally:
        writers_done.set()
    churner.join(60 + 4 * CHURNED_HANDLES * store.driver.timeout)
    if stalled:
        violated("ES-HANDLE-001", f"dropping handle {stalled[0]}: garbage collection did not finish within the "
                                  f"{store.driver.timeout:g} s timeout (a finaliser of the store's that blocks)")
    late = StoreDriver(store.driver.spec, timeout=store.driver.timeout)
    try:
        op = recorder.invoke("handle-after-churn", "latest", plan.actor_id)
        op.ok(version=late.new_handle().get_latest_version(plan.actor_id))
    finally:
        late.close()
    how = f"{'asyncio tasks' if store.is_async else 'threads'}, with handles made and dropped meanwhile"
    # The writers' own history (one handle) judges the check-and-append; when only the handles that
    # came and went saw stale versions, the store broke ES-HANDLE-001 and nothing else.
    writers_alone = check_history(
        [op for op in recorder.operations() if op.writer.startswith("w")],
        {plan.actor_id: stored_events(store.get_events(plan.actor_id, 0))},
    )
    _verdict("ES-CONC-001" if not writers_alone.ok else "ES-HANDLE-001", store, plan, recorder, request, how)


@pytest.mark.presupposes(*SEQUENTIAL_RULES, "SS-SNAP-001")
@pytest.mark.requirement("SS-SNAP-002")
def test_racing_snapshot_saves_on_one_actor_keep_the_highest(snapshot_store, aether_driver, fresh_actor,
                                                               aether_profile):
    # All writers of a round save a snapshot of one actor at once, each at its own version, in a
    # seeded order: a store that reads the current snapshot, compares and writes outside one
    # transaction (or upserts without a version guard) lets a lower version overwrite a higher one.
    # Each round has its own actor, so the final read of each shows what its round left.  Sixteen
    # writers: a compare-and-set retried a bounded number of times (8) gives up silently only when
    # more writers than that race.
    writers = 16
    rounds = max(20, aether_profile.rounds // 4)
    seed = _seed()
    rng = random.Random(seed)
    orders = [rng.sample(range(1, writers + 1), writers) for _ in range(rounds)]
    actors = [fresh_actor("snaprace") for _ in range(rounds)]
    for actor in actors:  # a store may refuse a snapshot ahead of the actor's events
        for version in range(1, writers + 1):
            save_ok("SS-SNAP-002", snapshot_store, new_event(actor, version))
    handles = [snapshot_store, aether_driver.new_handle()]
    barrier = threading.Barrier(writers)
    barrier_timeout = max(60.0, 3 * snapshot_store.driver.timeout)
    failures: list[str] = []

    def write(writer: int) -> None:
        handle = handles[writer % len(handles)]
        for round_no, actor in enumerate(actors):
            try:
                barrier.wait(barrier_timeout)
            except threading.BrokenBarrierError:
                return
            version = orders[round_no][writer]
            try:
                handle.save_snapshot(new_snapshot(actor, version, state={"writer": writer, "version": version}))
            except StoreMisbehaviour as error:
                failures.append(f"round {round_no}: save_snapshot({q(actor)}, version {version}) failed: {error}")
                if isinstance(error, StoreTimeout):
                    barrier.abort()
                    return

    threads = [threading.Thread(target=write, args=(w,), name=f"snapshot-writer-{w}") for w in range(writers)]
    with racing():
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    doing = f"{writers} writers saving snapshots of one actor at once, {rounds} rounds (plan seed {seed})"
    if failures:
        violated("SS-SNAP-002", f"{doing}: {failures[0]}" + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""))
    for round_no, actor in enumerate(actors):
        got = snapshot_store.get_latest_snapshot(actor)
        winner = orders[round_no].index(writers)
        if got is None or got.version != writers or got.state != {"writer": winner, "version": writers}:
            shown = "None" if got is None else f"version {got.version} with state {json.dumps(got.state)}"
            violated("SS-SNAP-002", f"{doing}: in round {round_no} versions {orders[round_no]} of {q(actor)} were "
                                    f"saved at once (each acknowledged); get_latest_snapshot then returned {shown}; "
                                    f"expected version {writers}, the highest")
