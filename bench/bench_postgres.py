"""How fast the PostgreSQL reference store saves and reads, against raw psycopg in the same run.

    python bench/bench_postgres.py [--saves N] [--race-seconds S] [--read-events R] [--repeat X]

Starts its own PostgreSQL (127.0.0.1, temporary cluster, fsync on) and measures:

* sequential saves through the sync handle (``shared_store``'s kind), against
  the raw baseline: one psycopg connection in autocommit, one ``INSERT`` of the
  same row (bytea id, bigint version, json of ``to_dict()``) and its commit per
  event, with no version check at all;
* 4 processes racing on one actor (read the latest, save latest+1), each with
  its own handle: acknowledged saves/s, conflicts, and the stream checked to be
  versions 1..N with every acknowledged save once;
* ``get_events`` of a 10,000-event actor, against a raw ``SELECT`` of the same
  rows plus building the ``Event`` objects.

Every figure is the best of ``--repeat`` rounds (the machine is shared);
ratios are store / raw, higher is better.  The target is sync save >= 0.7x
raw INSERT+COMMIT; the exit status is 1 on a miss.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402

from aether_conformance import Event, VersionConflictError  # noqa: E402
from aether_conformance.postgres_server import PostgresServer  # noqa: E402
from reference_store.postgres import SyncPostgresStore, encode_event  # noqa: E402

TARGET = 0.7
RACERS = 4


def make_event(actor: str, version: int) -> Event:
    return Event(id=uuid.uuid4().hex, event_type="Deposited", actor_id=actor, version=version,
                 data={"amount": version, "currency": "EUR", "note": "bench"},
                 timestamp=datetime.now(timezone.utc))


def best_rate(repeat: int, count: int, run) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return count / best


def bench_saves(dsn: str, saves: int, repeat: int) -> dict[str, float]:
    store = SyncPostgresStore(dsn)
    raw = psycopg.connect(dsn, autocommit=True)
    raw.execute("CREATE TABLE IF NOT EXISTS bench_raw (actor_id bytea, version bigint, event json)")
    try:
        def through_store() -> None:
            actor = f"bench-{uuid.uuid4().hex}"
            for version in range(1, saves + 1):
                store.save_event(make_event(actor, version))

        def through_raw() -> None:
            actor = f"bench-{uuid.uuid4().hex}"
            for version in range(1, saves + 1):
                event = make_event(actor, version)
                raw.execute("INSERT INTO bench_raw VALUES (%s, %s, %s::json)",
                            (actor.encode(), version, json.dumps(event.to_dict(), separators=(",", ":"))))

        through_store(), through_raw()  # warm up: connections, prepared statements
        return {"store save": best_rate(repeat, saves, through_store),
                "raw INSERT+COMMIT": best_rate(repeat, saves, through_raw)}
    finally:
        store.close()
        raw.close()


def _racer(dsn: str, actor: str, label: str, seconds: float, start, results) -> None:
    store = SyncPostgresStore(dsn)
    acked, conflicts = [], 0
    start.wait()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        event = make_event(actor, store.get_latest_version(actor) + 1)
        try:
            store.save_event(event)
        except VersionConflictError:
            conflicts += 1
            continue
        acked.append(event.id)
    store.close()
    results.put((label, acked, conflicts))


def bench_race(dsn: str, seconds: float) -> dict[str, float]:
    spawn = multiprocessing.get_context("spawn")
    actor = f"race-{uuid.uuid4().hex}"
    start, results = spawn.Barrier(RACERS + 1), spawn.Queue()
    racers = [spawn.Process(target=_racer, args=(dsn, actor, f"p{i}", seconds, start, results)) for i in range(RACERS)]
    for racer in racers:
        racer.start()
    start.wait()
    outcomes = [results.get(timeout=seconds + 120) for _ in racers]
    for racer in racers:
        racer.join()
    acked = [i for _, ids, _ in outcomes for i in ids]
    with SyncPostgresStore(dsn) as reader:
        stored = reader.get_events(actor, 0)
    assert [e.version for e in stored] == list(range(1, len(stored) + 1)), "versions are not 1..N"
    assert sorted(e.id for e in stored) == sorted(acked), "stored events differ from acknowledged saves"
    return {"acked saves/s": len(acked) / seconds, "conflicts/s": sum(c for _, _, c in outcomes) / seconds}


def bench_reads(dsn: str, events: int, repeat: int) -> dict[str, float]:
    actor = f"read-{uuid.uuid4().hex}"
    with SyncPostgresStore(dsn) as store, psycopg.connect(dsn, autocommit=True) as raw:
        with raw.cursor() as cursor:  # fill fast: one multi-row insert, as the store would have written it
            rows = [(actor.encode(), v, uuid.uuid4(), encode_event(make_event(actor, v))) for v in range(1, events + 1)]
            cursor.executemany("INSERT INTO aether.events VALUES (%s, %s, %s, %s::json)", rows)
            cursor.execute("INSERT INTO aether.streams VALUES (%s, %s)", (actor.encode(), events))

        def through_store() -> None:
            assert len(store.get_events(actor, 0)) == events

        def through_raw() -> None:
            found = raw.execute("SELECT event FROM aether.events WHERE actor_id = %s AND version >= %s "
                                "ORDER BY version", (actor.encode(), 0)).fetchall()
            assert len([Event.from_dict(document, check_schema=False) for (document,) in found]) == events

        through_store(), through_raw()
        return {"store get_events": best_rate(repeat, events, through_store),
                "raw SELECT + Events": best_rate(repeat, events, through_raw)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--saves", type=int, default=500)
    parser.add_argument("--race-seconds", type=float, default=5.0)
    parser.add_argument("--read-events", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with PostgresServer() as server:
        saves = bench_saves(server.dsn, args.saves, args.repeat)
        race = bench_race(server.dsn, args.race_seconds)
        reads = bench_reads(server.dsn, args.read_events, args.repeat)
    print(f"PostgreSQL, 127.0.0.1, fsync on; best of {args.repeat} rounds")
    for name, value in {**saves, **reads}.items():
        print(f"  {name:<24} {value:>10,.0f} /s")
    print(f"  {RACERS} processes racing on one actor: {race['acked saves/s']:,.0f} acknowledged saves/s, "
          f"{race['conflicts/s']:,.0f} conflicts/s; history linear, every acknowledged save stored once")
    ratio = saves["store save"] / saves["raw INSERT+COMMIT"]
    print("ratios (store / raw):")
    print(f"  save       vs raw INSERT+COMMIT   {ratio:.2f}x")
    print(f"  get_events vs raw SELECT + Events {reads['store get_events'] / reads['raw SELECT + Events']:.2f}x")
    verdict = "PASS" if ratio >= TARGET else "MISS"
    print(f"target: save >= {TARGET}x raw INSERT+COMMIT: {verdict} ({ratio:.2f}x)")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
