"""Concurrent optimistic writers: draw a plan, run it, record the history.

Every writer does what an aether client does — read the latest version, save
latest+1, learn from a conflict — in barrier-synchronised rounds, so that in
every round all writers hit the same actor within microseconds of each other.
A store whose check and append are not atomic lets two of them win the same
version in the very first rounds; the history checker then proves it.

The plan (who reads fresh, who writes from a stale view) is drawn up front
from a seed, so a failing run can be replayed with the same plan.  The same
code runs writers as threads of this process or inside child processes.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from .driver import DrivenHandle, StoreDriver, StoreMisbehaviour, StoreTimeout, ensure_import_path
from .errors import VersionConflictError
from .history import HistoryRecorder, StoredEvent
from .model import Event

__all__ = ["WriterPlan", "draw_plan", "run_writers", "run_writer_process", "content_digest", "stored_events"]

# A writer that stops hearing from its peers (one of them hung in the store) gives up after this.
_BARRIER_TIMEOUT_FLOOR = 30.0


@dataclass(frozen=True)
class WriterPlan:
    """What every writer does in every round, fixed before anything runs."""

    actor_id: str
    run_id: str
    seed: int
    rounds: int
    # fresh[w][r]: writer w reads the latest version in round r (True), or writes
    # from what it last saw — its own last save or the conflict's current_version.
    fresh: tuple[tuple[bool, ...], ...]

    @property
    def writers(self) -> int:
        return len(self.fresh)


def draw_plan(actor_id: str, run_id: str, writers: int, rounds: int, seed: int, stale_share: float = 0.25) -> WriterPlan:
    rng = random.Random(seed)
    fresh = tuple(
        tuple(r == 0 or rng.random() >= stale_share for r in range(rounds)) for _ in range(writers)
    )
    return WriterPlan(actor_id=actor_id, run_id=run_id, seed=seed, rounds=rounds, fresh=fresh)


def content_digest(event: Event) -> str:
    """A digest of what ES-READ-003 requires to round-trip (timestamps to the microsecond).

    Equal for contents that :func:`~aether_conformance.model.json_equal` finds equal: numbers
    are digested as the float64 Go holds (a store written in Go returns 3.0 for 3), and
    true stays apart from 1.
    """
    stamp = event.timestamp.astimezone(timezone.utc).replace(tzinfo=None).isoformat(timespec="microseconds")
    body = [event.id, event.event_type, event.actor_id, event.command_id, event.version, _as_go_holds(event.data), stamp]
    return hashlib.blake2b(json.dumps(body, sort_keys=True).encode(), digest_size=12).hexdigest()


def _as_go_holds(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        try:
            return ["number", float(value) + 0.0]  # + 0.0: -0.0 and 0 are equal numbers
        except OverflowError:  # beyond float64: json_equal compares such ints exactly
            return ["int", str(value)]
    if isinstance(value, dict):
        return {key: _as_go_holds(item) for key, item in value.items()}
    return [_as_go_holds(item) for item in value]


def stored_events(events: list[Event]) -> list[StoredEvent]:
    return [StoredEvent(version=e.version, event_id=e.id, digest=content_digest(e)) for e in events]


def _event(plan: WriterPlan, label: str, round_no: int, version: int) -> Event:
    return Event(
        id=f"{plan.run_id}-{label}-r{round_no}",
        event_type="ConcurrentAppend",
        actor_id=plan.actor_id,
        version=version,
        data={"writer": label, "round": round_no},
        timestamp=datetime.now(timezone.utc),
    )


def _write_rounds(
    handle: DrivenHandle,
    plan: WriterPlan,
    writer_no: int,
    label: str,
    barrier: Any,
    barrier_timeout: float,
    recorder: HistoryRecorder,
) -> None:
    actor = plan.actor_id
    seen: int | None = None
    for round_no, fresh in enumerate(plan.fresh[writer_no]):
        try:
            barrier.wait(barrier_timeout)
        except threading.BrokenBarrierError:
            return  # a peer is stuck in the store; its pending call is recorded as unknown
        if fresh or seen is None:
            op = recorder.invoke(label, "latest", actor)
            try:
                seen = handle.get_latest_version(actor)
            except StoreTimeout:
                barrier.abort()
                return
            except (StoreMisbehaviour, VersionConflictError) as error:
                op.error(str(error))
                continue
            op.ok(version=seen)
        event = _event(plan, label, round_no, seen + 1)
        op = recorder.invoke(
            label, "save", actor, version=event.version, event_id=event.id, digest=content_digest(event)
        )
        try:
            handle.save_event(event)
        except VersionConflictError as conflict:
            if conflict.actor_id != actor or conflict.attempted_version != event.version:
                op.error(f"VersionConflictError with wrong fields: {conflict!r}")
            else:
                op.conflict(conflict.current_version)
                seen = conflict.current_version
            continue
        except StoreTimeout:
            barrier.abort()
            return
        except StoreMisbehaviour as error:
            op.error(str(error))
            continue
        op.ok()
        seen = event.version


def run_writers(
    handles: list[DrivenHandle],
    plan: WriterPlan,
    recorder: HistoryRecorder,
    *,
    label_prefix: str = "",
    barrier: Any = None,
    call_timeout: float,
) -> None:
    """Run the plan's writers as threads, writer i on handles[i % len(handles)]; wait for all."""
    barrier = barrier or threading.Barrier(plan.writers)
    barrier_timeout = max(_BARRIER_TIMEOUT_FLOOR, 3 * call_timeout)
    threads = [
        threading.Thread(
            target=_write_rounds,
            args=(handles[w % len(handles)], plan, w, f"{label_prefix}w{w}", barrier, barrier_timeout, recorder),
            name=f"aether-writer-{label_prefix}{w}",
            daemon=True,  # a writer stuck in a hung store must not keep the run alive
        )
        for w in range(plan.writers)
    ]
    for thread in threads:
        thread.start()
    # Every call is bounded by call_timeout and every barrier wait by barrier_timeout.
    deadline = plan.rounds * 2 * (call_timeout + 1) + barrier_timeout
    for thread in threads:
        thread.join(deadline)


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
        sub_plan = replace(plan, fresh=plan.fresh[first_writer:first_writer + threads])
        run_writers([handle], sub_plan, recorder, label_prefix=f"p{process_no}", barrier=barrier,
                    call_timeout=call_timeout)
        driver.close()
    except Exception as error:  # reported to the parent, which fails the test with it
        outcome["error"] = f"{type(error).__name__}: {error}"
        barrier.abort()
    outcome["operations"] = [op.to_dict() for op in recorder.operations()]
    results.put(outcome)
