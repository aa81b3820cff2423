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
import time

import pytest

from ..plugin import STATISTICS_KEY
from ..history import HistoryRecorder, check_history, history_to_json
from ..writers import draw_plan, run_writer_process, run_writers, stored_events
from .support import q, violated


def _verdict(req_id, store, plan, recorder, tmp_path_factory, how):
    operations = recorder.operations()
    final = store.get_events(plan.actor_id, 0)
    result = check_history(operations, {plan.actor_id: stored_events(final)})
    saves = [op for op in operations if op.kind == "save"]
    stats = {
        "save_attempts": len(saves),
        "acknowledged_saves": sum(op.outcome == "ok" for op in saves),
        "conflicts": sum(op.outcome == "conflict" for op in saves),
        "errors": sum(op.outcome == "error" for op in saves),
        "unknown": sum(op.outcome == "unknown" for op in operations),
    }
    if result.ok and not stats["errors"] and not stats["unknown"]:
        return stats
    path = tmp_path_factory.mktemp("aether-history") / "history.json"
    path.write_text(json.dumps({"plan": {"actor_id": plan.actor_id, "seed": plan.seed, "writers": plan.writers,
                                         "rounds": plan.rounds}, "operations": history_to_json(operations)}))
    where = f"{how}, plan seed {plan.seed}; full history in {path}"
    if not result.ok:
        violated(req_id, f"{plan.writers} writers appending to {q(plan.actor_id)} ({where}): {result.explain()}")
    failures = [op for op in operations if op.outcome in ("error", "unknown")]
    first = failures[0]
    violated(
        req_id,
        f"{plan.writers} writers appending to {q(plan.actor_id)} ({where}): {stats['errors']} store call(s) "
        f"failed and {stats['unknown']} never returned; first: {first.writer} {first.kind} "
        f"{'v' + str(first.version) if first.version is not None else ''}: {first.detail or 'no answer'}",
    )


def _seed() -> int:
    return random.SystemRandom().randrange(2**32)


@pytest.mark.requirement("ES-CONC-001")
def test_concurrent_writers_on_one_handle(store, fresh_actor, aether_profile, tmp_path_factory, record_property):
    profile = aether_profile
    plan = draw_plan(fresh_actor("race-one-handle"), f"run{_seed()}", profile.writers, profile.rounds, _seed())
    recorder = HistoryRecorder()
    run_writers([store], plan, recorder, call_timeout=store.driver.timeout)
    how = f"{'asyncio tasks' if store.is_async else 'threads'} sharing {store.name}"
    record_property(STATISTICS_KEY, _verdict("ES-CONC-001", store, plan, recorder, tmp_path_factory, how))


@pytest.mark.requirement("ES-CONC-001")
def test_concurrent_writers_on_many_handles(store, aether_driver, fresh_actor, aether_profile, tmp_path_factory,
                                            record_property):
    profile = aether_profile
    handles = [store] + [aether_driver.new_handle() for _ in range(min(profile.writers, 4) - 1)]
    plan = draw_plan(fresh_actor("race-many-handles"), f"run{_seed()}", profile.writers, profile.rounds, _seed())
    recorder = HistoryRecorder()
    run_writers(handles, plan, recorder, call_timeout=store.driver.timeout)
    how = f"{'asyncio tasks' if store.is_async else 'threads'} over {len(handles)} handles"
    record_property(STATISTICS_KEY, _verdict("ES-CONC-001", store, plan, recorder, tmp_path_factory, how))


@pytest.mark.requirement("ES-CONC-002")
def test_concurrent_writer_processes(store, fresh_actor, aether_profile, tmp_path_factory, record_property):
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
    record_property(STATISTICS_KEY, _verdict("ES-CONC-002", store, plan, recorder, tmp_path_factory, how))
