"""How reliably the concurrency tests catch non-atomic stores: N runs each, catch rate printed.

    python bench/catch_rate.py [--runs 20] [--profile quick]

Each run is a fresh CLI process running only the concurrency tests against
one racy store: the concurrent-writer tests (``-k concurrent_writer``) for the
textbook races, every test of ``suite/test_concurrency.py`` for the subtle zoo's
races (readers, several actors, skipped versions, snapshot writers, handles that
come and go).  A run "catches" the store when its requirement is reported
failed.  The target is 100%: detection that works only sometimes is a defect.
The quick profile is the smallest load the kit offers, so its rate is the floor.

    python bench/catch_rate.py --only subtle   # just the subtle zoo's races
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aether_conformance.nats_server import NatsServer  # noqa: E402

WRITERS, ALL_CONCURRENCY = "concurrent_writer", "test_concurrency"
# The writer-process test alone: these stores race between threads too, so beside the thread tests
# ES-CONC-002 is reported blocked by ES-CONC-001 (one bug, one requirement) and would not show here.
PROCESSES = "concurrent_writer_processes"
# store -> (requirement it must fail, extra CLI arguments, needs a nats-server, -k expression)
RACY = {
    "tests.zoo.specimens:check_then_write_race": ("ES-CONC-001", [], False, WRITERS),
    "tests.zoo.specimens:narrow_check_then_write_race": ("ES-CONC-001", [], False, WRITERS),
    "tests.zoo.specimens:lock_per_handle": ("ES-CONC-001", [], False, WRITERS),
    "tests.zoo.specimens:async_check_then_write_race": ("ES-CONC-001", [], False, WRITERS),
    "tests.zoo.specimens:stale_handle_cache": ("ES-CONC-001", [], False, WRITERS),
    "tests.zoo.specimens:nonatomic_sqlite": ("ES-CONC-002", ["--capability", "multiprocess"], False, PROCESSES),
    "tests.zoo.naive_jetstream:sync_store": ("ES-CONC-002", ["--capability", "multiprocess"], True, PROCESSES),
    "tests.zoo.subtle:per_actor_lock_global_rewrite": ("ES-CONC-001", [], False, ALL_CONCURRENCY),
    "tests.zoo.subtle:lock_timeout_as_conflict": ("ES-CONC-001", [], False, ALL_CONCURRENCY),
    "tests.zoo.subtle:postgres_gap_trap": ("ES-CONC-001", [], False, ALL_CONCURRENCY),
    "tests.zoo.subtle:stale_read_through_latest": ("ES-CONC-001", [], False, ALL_CONCURRENCY),
    "tests.zoo.subtle:counter_before_event": ("ES-CONC-001", [], False, ALL_CONCURRENCY),
    "tests.zoo.subtle:replica_lags_under_load": ("ES-CONC-001", [], False, ALL_CONCURRENCY),
    "tests.zoo.subtle:replica_lags_for_other_handles": ("ES-HANDLE-001", [], False, ALL_CONCURRENCY),
    "tests.zoo.subtle:pool_slot_stale_cache": ("ES-HANDLE-001", [], False, ALL_CONCURRENCY),
    "tests.zoo.subtle:snapshot_racy_upsert": ("SS-SNAP-002", [], False, ALL_CONCURRENCY),
}


def caught(store: str, requirement: str, extra: list[str], profile: str, env: dict[str, str], scratch: Path,
           selection: str) -> bool:
    report = scratch / "report.json"
    subprocess.run(
        [sys.executable, "-m", "aether_conformance.cli", "run", store, "--profile", profile, "--json-report",
         str(report), "--artifacts", str(scratch / "artifacts"), *extra, "--", "-k", selection],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, **env},
    )
    outcomes = {r["id"]: r["outcome"] for r in json.loads(report.read_text())["requirements"]}
    return outcomes[requirement] == "failed"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--only", choices=["textbook", "subtle"], help="only the textbook or the subtle zoo's races")
    args = parser.parse_args()
    chosen = {store: how for store, how in RACY.items()
              if args.only is None or (args.only == "subtle") == store.startswith("tests.zoo.subtle:")}
    worst = 1.0
    with tempfile.TemporaryDirectory() as tmp, NatsServer(store_dir=Path(tmp) / "js") as server:
        for store, (requirement, extra, needs_nats, selection) in chosen.items():
            started, hits = time.perf_counter(), 0
            for run in range(args.runs):
                scratch = Path(tmp) / f"{store.replace(':', '_')}-{run}"
                scratch.mkdir()
                env = {"AETHER_SQLITE_PATH": str(scratch / "naive.sqlite3")}
                if needs_nats:
                    env["AETHER_NATS_URL"] = server.url
                hits += caught(store, requirement, extra, args.profile, env, scratch, selection)
            rate = hits / args.runs
            worst = min(worst, rate)
            print(f"{store:<48} {requirement}  caught {hits:>3}/{args.runs}  ({rate:6.1%})  "
                  f"{(time.perf_counter() - started) / args.runs:5.2f} s/run")
    print(f"worst catch rate: {worst:.1%} (target 100%)")
    return 0 if worst == 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
