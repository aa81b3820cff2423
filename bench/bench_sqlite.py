"""Throughput of the SQLite reference store against raw sqlite3, in one run.

    python bench/bench_sqlite.py

Measured, each on a fresh database file in a temporary directory:

* saves/s, one process, one actor: the optimistic loop (get_latest_version,
  then save_event at latest+1), and saves of prebuilt versions 1..n;
* saves/s with two writer processes (spawned) racing on one actor with the
  optimistic loop, and how many attempts lost with a VersionConflictError;
* reads/s of a 1,000-event actor (get_events from version 1).

Baselines, measured in the same run on the same kind of file (WAL,
synchronous=FULL, the same table): raw sqlite3 ``BEGIN IMMEDIATE; INSERT;
COMMIT`` per prebuilt row; a raw ``SELECT`` of the 1,000 rows, alone and
followed by building the ``Event`` objects (JSON decoding, timestamp parsing,
the model's checks) that any store returning Events must build.  The ratios
store/raw are what to compare between machines; the absolute figures mostly
measure the disk's fsync.  Every figure is the best of three timed runs.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from aether_conformance import Event, VersionConflictError
from aether_conformance.timestamps import format_go_time, parse_go_time
from reference_store.sqlite import PATH_ENV, SQLiteEventStore, shared_store

SAVES = 1_000
RACE_WINS_PER_WRITER = 500
READ_STREAM = 1_000
READS = 200
REPEATS = 3

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def payload(index: int) -> dict:
    # A typical small event body: flat JSON scalars, as most domain events carry.
    return {"amount": index % 1000, "currency": "EUR", "account": f"acct-{index % 97}", "approved": True}


def make_event(actor: str, version: int, event_id: str | None = None) -> Event:
    return Event(
        id=event_id or f"{actor}-{version}", event_type="Deposited", actor_id=actor,
        version=version, data=payload(version), timestamp=T0,
    )


def best_rate(count: int, run: Callable[[Path], float]) -> float:
    """Operations per second of the fastest of REPEATS runs, each on a new file; run returns seconds."""
    best = float("inf")
    with tempfile.TemporaryDirectory(prefix="bench-sqlite-") as directory:
        for repeat in range(REPEATS):
            best = min(best, run(Path(directory) / f"run-{repeat}.sqlite3"))
    return count / best


# --- the store ----------------------------------------------------------------------------------


def store_optimistic_saves(path: Path) -> float:
    with SQLiteEventStore(path) as store:
        started = time.perf_counter()
        for _ in range(SAVES):
            store.save_event(make_event("bench", store.get_latest_version("bench") + 1))
        return time.perf_counter() - started


def store_prebuilt_saves(path: Path) -> float:
    events = [make_event("bench", version) for version in range(1, SAVES + 1)]
    with SQLiteEventStore(path) as store:
        started = time.perf_counter()
        for event in events:
            store.save_event(event)
        return time.perf_counter() - started


def race_writer(writer: int, wins: int, start, results) -> None:
    """A spawned writer process: its own handle from the factory, the optimistic loop."""
    with shared_store() as store:
        start.wait()
        conflicts = 0
        won = 0
        while won < wins:
            version = store.get_latest_version("race") + 1
            try:
                store.save_event(make_event("race", version, f"w{writer}-{version}"))
                won += 1
            except VersionConflictError:
                conflicts += 1
        results.put(conflicts)


def store_two_process_race(path: Path, conflicts_seen: list[int]) -> float:
    SQLiteEventStore(path).close()  # create the file outside the timed part
    os.environ[PATH_ENV] = str(path)
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(3)
    results = context.Queue()
    writers = [context.Process(target=race_writer, args=(i, RACE_WINS_PER_WRITER, start, results)) for i in range(2)]
    for writer in writers:
        writer.start()
    start.wait()  # both writers are up and have their handle: interpreter start-up is not timed
    started = time.perf_counter()
    conflicts = sum(results.get() for _ in writers)
    elapsed = time.perf_counter() - started
    for writer in writers:
        writer.join()
    conflicts_seen.append(conflicts)
    with SQLiteEventStore(path) as check:
        versions = [event.version for event in check.get_events("race", 1)]
    if versions != list(range(1, 2 * RACE_WINS_PER_WRITER + 1)):
        sys.exit(f"race left a broken stream: {len(versions)} events, expected 1..{2 * RACE_WINS_PER_WRITER}")
    return elapsed


def store_reads(path: Path) -> float:
    with SQLiteEventStore(path) as store:
        for version in range(1, READ_STREAM + 1):
            store.save_event(make_event("reader", version))
        started = time.perf_counter()
        for _ in range(READS):
            events = store.get_events("reader", 1)
        elapsed = time.perf_counter() - started
    assert len(events) == READ_STREAM
    return elapsed


# --- raw sqlite3 on the same kind of file -------------------------------------------------------


def raw_connection(path: Path) -> sqlite3.Connection:
    # The store's schema and settings, without the store.
    SQLiteEventStore(path).close()
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def raw_row(actor: str, version: int) -> tuple:
    """The row the store writes for make_event(actor, version), built before timing."""
    data = json.dumps(payload(version), ensure_ascii=False, separators=(",", ":"))
    return (actor, version, f"{actor}-{version}", "Deposited", "", data, format_go_time(T0))


RAW_INSERT = (
    "INSERT INTO events (actor_id, version, id, event_type, command_id, data, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def raw_saves(path: Path) -> float:
    rows = [raw_row("bench", version) for version in range(1, SAVES + 1)]
    conn = raw_connection(path)
    started = time.perf_counter()
    for row in rows:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(RAW_INSERT, row)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def raw_reads(path: Path, build_events: bool = False) -> float:
    """A raw SELECT of the stream; with build_events, also turn the rows into Events as any store must."""
    conn = raw_connection(path)
    conn.execute("BEGIN")
    conn.executemany(RAW_INSERT, [raw_row("reader", version) for version in range(1, READ_STREAM + 1)])
    conn.execute("COMMIT")
    query = "SELECT * FROM events WHERE actor_id = ? AND version >= ? ORDER BY version"
    started = time.perf_counter()
    for _ in range(READS):
        rows = conn.execute(query, ("reader", 1)).fetchall()
        if build_events:
            rows = [
                Event(id=i, event_type=t, actor_id=a, command_id=c, version=v,
                      data=json.loads(d), timestamp=parse_go_time(ts))
                for a, v, i, t, c, d, ts in rows
            ]
    elapsed = time.perf_counter() - started
    conn.close()
    assert len(rows) == READ_STREAM
    return elapsed


def main() -> None:
    print(f"SQLite {sqlite3.sqlite_version}, Python {sys.version.split()[0]}, temp dir {tempfile.gettempdir()}")
    raw_save = best_rate(SAVES, raw_saves)
    optimistic = best_rate(SAVES, store_optimistic_saves)
    prebuilt = best_rate(SAVES, store_prebuilt_saves)
    conflicts: list[int] = []
    race = best_rate(2 * RACE_WINS_PER_WRITER, lambda path: store_two_process_race(path, conflicts))
    raw_read = best_rate(READS, raw_reads)
    raw_read_events = best_rate(READS, lambda path: raw_reads(path, build_events=True))
    reads = best_rate(READS, store_reads)

    rows = [
        ("raw INSERT+COMMIT per row (baseline)", raw_save, "saves/s", raw_save),
        ("store: read latest + save, 1 process", optimistic, "saves/s", raw_save),
        ("store: prebuilt versions, 1 process", prebuilt, "saves/s", raw_save),
        ("store: 2 processes racing on 1 actor", race, "saves/s", raw_save),
        ("raw SELECT of 1,000 rows (baseline)", raw_read, "reads/s", raw_read),
        ("raw SELECT + building 1,000 Events", raw_read_events, "reads/s", raw_read),
        ("store: get_events of 1,000 events", reads, "reads/s", raw_read),
    ]
    for label, rate, unit, baseline in rows:
        print(f"{label:<40} {rate:>10,.0f} {unit}   {rate / baseline:5.2f} x raw")
    print(f"get_events vs raw SELECT + building Events: {reads / raw_read_events:.2f} x")
    attempts = 2 * RACE_WINS_PER_WRITER * REPEATS + sum(conflicts)
    print(
        f"race conflicts: {conflicts} per run ({sum(conflicts) / attempts:.1%} of attempts lost and retried); "
        f"every run left exactly versions 1..{2 * RACE_WINS_PER_WRITER}"
    )


if __name__ == "__main__":
    main()
