"""Faults injected while a store is certified: the generic hook, the seeded schedule, the record.

A *fault kind* is a name and two callables: ``inject()`` starts the fault and
returns what it hit (``"n1 (stream leader)"``); ``recover()`` ends it and
returns only once the system is healthy again, raising an error that names
what did not come back (never hanging: it must bound its own wait).

A *fault provider* offers fault kinds for one backend.  The kit asks for one
through the pytest hook :func:`FaultHookSpecs.pytest_aether_fault_provider`;
the first plugin that answers wins.  The NATS cluster the CLI starts with
``--nats-cluster N`` is the first provider
(:class:`aether_conformance.nats_cluster.ClusterFaults`); the PostgreSQL server of
``--postgres-server`` the second (:class:`aether_conformance.postgres_server.PostgresFaults`).
Any other backend author plugs in the same way, from a module loaded as a
pytest plugin (``aether-conformance run ... --faults restart -- -p mystore.faults``)::

    from aether_conformance.faults import FaultKind

    class ReplicaSetFaults:
        def fault_kinds(self):
            return [FaultKind("restart", inject=self.stop_primary, recover=self.start_primary_and_wait)]
        def preconditions(self):
            return []            # problems that would make a fault run meaningless
        def environment(self):
            return {"backend": "mongodb", "version": "7.0", "write_concern": "majority"}

    def pytest_aether_fault_provider(config):
        return ReplicaSetFaults()

The schedule (:func:`draw_schedule`) is drawn from a seed before anything
runs: every named kind at least once, in a seeded order, with seeded hold
times and quiet gaps; :func:`run_schedule` injects them one at a time and
waits for recovery between faults, recording each (:class:`FaultRecord`).
The suite's ``test_faults`` runs concurrent writers meanwhile and checks
the history (ES-FAULT-001).  What the run proves is "no anomaly found in N
faults": evidence, not proof.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

import pytest

__all__ = [
    "FaultKind",
    "FaultProvider",
    "FaultHookSpecs",
    "FaultSetup",
    "ScheduledFault",
    "ScheduleRun",
    "FaultRecord",
    "FaultRunError",
    "draw_schedule",
    "run_schedule",
    "parse_fault_names",
    "FAULT_RUN_KEY",
    "fault_summary_lines",
]

# The user property under which test_faults records its run: the report keeps each in its
# "faults" (schemas/report.schema.json).
FAULT_RUN_KEY = "aether_fault_run"

# Hold and gap ranges in seconds: long enough for a Raft election to matter, short
# enough that three faults fit in about a minute.  They shape the load, not the verdict.
# The shortest hold still outlasts, by seconds, the second or so a partitioned NATS
# follower takes to start answering its clients from its stale replica.
HOLD_SECONDS = (3.0, 6.0)
GAP_SECONDS = (1.0, 2.5)


@dataclass(frozen=True)
class FaultKind:
    """One kind of fault a provider can inject, and how to end it."""

    name: str
    inject: Callable[[], str]
    recover: Callable[[], None]


@runtime_checkable
class FaultProvider(Protocol):
    def fault_kinds(self) -> Sequence[FaultKind]:
        """The kinds of fault this backend can inject."""

    def preconditions(self) -> list[str]:
        """Problems that make a fault run meaningless (checked after the store made its first handle)."""

    def environment(self) -> dict[str, Any]:
        """Facts for the report: server version, durability settings, topology."""


class FaultHookSpecs:
    """Hooks the kit's pytest plugin adds (``pytest_addhooks``)."""

    @pytest.hookspec(firstresult=True)
    def pytest_aether_fault_provider(self, config: pytest.Config) -> FaultProvider | None:
        """Return the fault provider for this run, or None to leave it to another plugin."""


@dataclass(frozen=True)
class FaultSetup:
    """What the ``aether_faults`` fixture hands the suite: who injects, what, and the schedule's seed."""

    provider: FaultProvider
    names: tuple[str, ...]
    seed: int | None = None  # None: drawn at random, and printed in the report


class FaultRunError(RuntimeError):
    """The fault run itself went wrong (an unknown kind, a system that did not recover)."""


def parse_fault_names(text: str) -> tuple[str, ...]:
    """``"kill,pause"`` -> ``("kill", "pause")``; ValueError naming the rule for bad input."""
    names = tuple(part.strip() for part in text.split(","))
    if not text.strip() or any(not name for name in names):
        raise ValueError(f"faults: must be a comma-separated list of fault names (e.g. kill,pause), got {text!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"faults: names must not repeat, got {text!r}")
    return names


@dataclass(frozen=True)
class ScheduledFault:
    kind: str
    gap: float  # quiet seconds before injecting
    hold: float  # seconds the fault lasts before recovery starts


def draw_schedule(kinds: Sequence[str], seed: int) -> list[ScheduledFault]:
    """Every kind once, in a seeded order, with seeded gaps and hold times."""
    rng = random.Random(seed)
    order = list(kinds)
    rng.shuffle(order)
    return [ScheduledFault(kind, round(rng.uniform(*GAP_SECONDS), 2), round(rng.uniform(*HOLD_SECONDS), 2))
            for kind in order]


@dataclass
class FaultRecord:
    """One injected fault.  Times are seconds since the schedule started (monotonic)."""

    kind: str
    target: str
    start: float
    end: float | None = None  # when the system was healthy again
    recovery_seconds: float | None = None  # from the start of recovery to healthy
    # The same instants on the monotonic_ns clock of the history, for attributing calls to faults.
    start_ns: int = 0
    end_ns: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("start_ns", "end_ns")}


@dataclass
class ScheduleRun:
    seed: int
    schedule: list[ScheduledFault]
    records: list[FaultRecord] = field(default_factory=list)
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)


def run_schedule(kinds: dict[str, FaultKind], schedule: Sequence[ScheduledFault], seed: int,
                 abort: threading.Event | None = None) -> ScheduleRun:
    """Inject each scheduled fault, hold it, recover and wait; never leaves a fault in place.

    Runs in the calling thread; ``abort`` cuts the holds and gaps short (each
    injected fault is still recovered).  A failed recovery stops the schedule
    with ``error`` set.
    """
    unknown = [item.kind for item in schedule if item.kind not in kinds]
    if unknown:
        raise FaultRunError(
            f"faults: the provider offers {', '.join(sorted(kinds)) or 'no faults'}; unknown: {', '.join(unknown)}"
        )
    run = ScheduleRun(seed=seed, schedule=list(schedule))
    abort = abort or threading.Event()
    t0 = time.monotonic_ns()

    def seconds(ns: int) -> float:
        return round((ns - t0) / 1e9, 3)

    try:
        for item in schedule:
            abort.wait(item.gap)
            kind = kinds[item.kind]
            start_ns = time.monotonic_ns()
            try:
                target = kind.inject()
            except Exception as error:
                run.error = f"injecting {item.kind} failed: {type(error).__name__}: {error}"
                return run
            record = FaultRecord(kind=item.kind, target=target, start=seconds(start_ns), start_ns=start_ns)
            run.records.append(record)
            abort.wait(item.hold)
            recovering = time.monotonic_ns()
            try:
                kind.recover()
            except Exception as error:
                record.error = f"{type(error).__name__}: {error}"
                run.error = f"{item.kind} on {target} did not recover: {record.error}"
                return run
            record.end_ns = time.monotonic_ns()
            record.end = seconds(record.end_ns)
            record.recovery_seconds = round((record.end_ns - recovering) / 1e9, 3)
        return run
    finally:
        run.done.set()


def fault_summary_lines(runs: Sequence[dict[str, Any]]) -> list[str]:
    """The fault runs of a report (its ``faults``, one per fault test; see
    schemas/report.schema.json), in words for the terminal."""
    lines: list[str] = []
    for run in runs:
        env = run.get("environment") or {}
        facts = ", ".join(f"{key} {value}" for key, value in env.items())
        lines.append(f"Faults: {run['verdict']} (schedule seed {run['seed']}; {facts})")
        for fault in run["faults"]:
            healed = (f"healthy again at {fault['end']:.1f}s, recovery {fault['recovery_seconds']:.1f}s"
                      if fault["end"] is not None else f"did not recover: {fault['error']}")
            lines.append(f"  {fault['kind']} on {fault['target']} at {fault['start']:.1f}s; {healed}")
        unknown = run["unknown_outcomes"]
        lines.append(
            f"  {unknown['count']} call(s) with unknown outcome: {unknown['saves_landed_once']} save(s) read back "
            f"once, {unknown['saves_never_landed']} never applied, {unknown['reads']} read(s); "
            f"{run['operations']['acknowledged_saves']} of {run['operations']['save_attempts']} saves acknowledged"
        )
    return lines
