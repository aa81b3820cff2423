"""Two unsafe twins of the PostgreSQL reference store, as people first write them.

Both keep the reference store's encoding (bytea ids, exact Go JSON), so the
only thing wrong with them is the check-and-append:

* :class:`PrimaryKeyMaxStore` (``pk_max_store``): ``PRIMARY KEY (actor_id,
  version)`` plus ``SELECT max(version)``, compare, ``INSERT`` in one
  transaction at READ COMMITTED.  The key stops two writers taking the same
  version, so it looks safe; but two writers that both read max 5 can save 7
  and then 6: the second save lands below an acknowledged one, which no
  atomic store allows (ES-CONC-001).  Only writers that skip versions expose it
  (the suite's ``test_writers_and_readers_on_several_actors``).
* :class:`CheckThenInsertStore` (``check_then_insert_store``): the same check
  in autocommit, without the key: writers that read the same max both insert
  the same version.

A millisecond between the check and the insert stands for the application
code that usually sits there.

``python -m tests.zoo.postgres_twins [--runs 20] [--profile quick]`` certifies
each twin that many times (concurrency tests only) on one throwaway server
and prints how often the suite caught it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from aether_conformance import Event, VersionConflictError
from reference_store.postgres import DSN_ENV, _decode_event, _read_key, actor_key, encode_event

_LATEST = "SELECT COALESCE(max(version), 0) FROM {table} WHERE actor_id = %s"


class _TwinStore:
    table = ""
    key = ""  # the table's key clause, if any
    autocommit = True

    def __init__(self, dsn: str | None = None) -> None:
        self.dsn = dsn or os.environ[DSN_ENV]
        self._local = threading.local()
        self._connections: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(42)")  # concurrent CREATE ... IF NOT EXISTS can race
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} "
                f"(actor_id bytea NOT NULL, version bigint NOT NULL, event json NOT NULL{self.key})"
            )
            conn.execute("SELECT pg_advisory_unlock(42)")

    def between_check_and_insert(self) -> None:
        time.sleep(0.001)  # the application code that usually sits here

    def _conn(self) -> psycopg.Connection[Any]:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = psycopg.connect(self.dsn, autocommit=self.autocommit)
            with self._lock:
                self._connections.append(conn)
        return conn

    def get_latest_version(self, actor_id: str) -> int:
        row = self._conn().execute(_LATEST.format(table=self.table), (_read_key(actor_id),)).fetchone()
        self._end_read()
        return row[0]

    def get_events(self, actor_id: str, from_version: int) -> list[Event]:
        rows = self._conn().execute(
            f"SELECT event FROM {self.table} WHERE actor_id = %s AND version >= %s ORDER BY version",
            (_read_key(actor_id), max(min(from_version, 2**63 - 1), -(2**63))),
        ).fetchall()
        self._end_read()
        return [_decode_event(document) for (document,) in rows]

    def _end_read(self) -> None:
        if not self.autocommit:
            self._conn().rollback()

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()


class PrimaryKeyMaxStore(_TwinStore):
    table = "zoo_pk_max_events"
    key = ", PRIMARY KEY (actor_id, version)"
    autocommit = False  # psycopg opens a transaction (READ COMMITTED, the server default) at the first statement

    def save_event(self, event: Event) -> None:
        key, document = actor_key(event.actor_id), encode_event(event)
        conn = self._conn()
        try:
            latest = conn.execute(_LATEST.format(table=self.table), (key,)).fetchone()[0]
            if event.version <= latest:
                raise VersionConflictError(actor_id=event.actor_id, attempted_version=event.version, current_version=latest)
            self.between_check_and_insert()
            conn.execute(f"INSERT INTO {self.table} VALUES (%s, %s, %s::json)", (key, event.version, document))
            conn.commit()
        except pg_errors.UniqueViolation:
            conn.rollback()
            latest = conn.execute(_LATEST.format(table=self.table), (key,)).fetchone()[0]
            conn.rollback()
            raise VersionConflictError(
                actor_id=event.actor_id, attempted_version=event.version, current_version=latest
            ) from None
        except BaseException:
            conn.rollback()
            raise


class CheckThenInsertStore(_TwinStore):
    table = "zoo_check_then_insert_events"

    def save_event(self, event: Event) -> None:
        key, document = actor_key(event.actor_id), encode_event(event)
        conn = self._conn()
        latest = conn.execute(_LATEST.format(table=self.table), (key,)).fetchone()[0]
        if event.version <= latest:
            raise VersionConflictError(actor_id=event.actor_id, attempted_version=event.version, current_version=latest)
        self.between_check_and_insert()
        conn.execute(f"INSERT INTO {self.table} VALUES (%s, %s, %s::json)", (key, event.version, document))


class AsynchronousCommitStore(_TwinStore):
    """Atomic (a transaction-level advisory lock per actor around the check and the insert), but
    with ``synchronous_commit = off`` for its sessions, a common speed-up: a commit returns before
    its WAL reaches the disk, so a crash loses saves already acknowledged (ES-FAULT-001)."""

    table = "zoo_async_commit_events"
    key = ", PRIMARY KEY (actor_id, version)"
    autocommit = False

    def _conn(self) -> psycopg.Connection[Any]:
        conn = getattr(self._local, "conn", None)
        if conn is not None and conn.closed:  # the server restarted: reconnect, as a pool would
            self._local.conn = None
        fresh = getattr(self._local, "conn", None) is None
        conn = super()._conn()
        if fresh:
            conn.execute("SET synchronous_commit = off")
            conn.commit()
        return conn

    def get_latest_version(self, actor_id: str) -> int:
        return self._retried(super().get_latest_version, actor_id)

    def get_events(self, actor_id: str, from_version: int) -> list[Event]:
        return self._retried(super().get_events, actor_id, from_version)

    def _retried(self, read: Any, *args: Any) -> Any:
        """Reads are idempotent: one more try on a fresh connection after the server went away."""
        try:
            return read(*args)
        except psycopg.OperationalError:
            return read(*args)

    def save_event(self, event: Event) -> None:
        key, document = actor_key(event.actor_id), encode_event(event)
        conn = self._conn()
        try:
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(encode(%s, 'hex'), 0))", (key,))
            latest = conn.execute(_LATEST.format(table=self.table), (key,)).fetchone()[0]
            if event.version <= latest:
                raise VersionConflictError(actor_id=event.actor_id, attempted_version=event.version,
                                           current_version=latest)
            conn.execute(f"INSERT INTO {self.table} VALUES (%s, %s, %s::json)", (key, event.version, document))
            conn.commit()
        except BaseException:
            conn.rollback()
            raise


def pk_max_store() -> PrimaryKeyMaxStore:
    return PrimaryKeyMaxStore()


def check_then_insert_store() -> CheckThenInsertStore:
    return CheckThenInsertStore()


def asynchronous_commit_store() -> AsynchronousCommitStore:
    return AsynchronousCommitStore()


# What each twin must be caught for, and the CLI options it is certified with.
TWINS = {
    "tests.zoo.postgres_twins:pk_max_store": "ES-CONC-001",
    "tests.zoo.postgres_twins:check_then_insert_store": "ES-CONC-001",
}
ROOT = Path(__file__).resolve().parents[2]


def certify_concurrency(store: str, dsn: str, report: Path, profile: str = "quick") -> dict[str, str]:
    """Run only the concurrency tests that race writers (the version-skipping one included)
    against ``store``; each requirement's outcome."""
    completed = subprocess.run(
        [sys.executable, "-m", "aether_conformance.cli", "run", store, "--profile", profile,
         "--capability", "multiprocess", "--json-report", str(report),
         "--artifacts", str(report.with_suffix(".artifacts")), "--", "-k", "concurrent_writer or several_actors"],
        cwd=ROOT, capture_output=True, text=True, timeout=900, env={**os.environ, DSN_ENV: dsn},
    )
    if not report.exists():
        raise RuntimeError(f"no report from {store}:\n{(completed.stdout + completed.stderr)[-3000:]}")
    return {r["id"]: r["outcome"] for r in json.loads(report.read_text())["requirements"]}


def main(argv: list[str] | None = None) -> int:
    from aether_conformance.postgres_server import PostgresServer

    parser = argparse.ArgumentParser(prog="python -m tests.zoo.postgres_twins", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--profile", default="quick")
    args = parser.parse_args(argv)
    worst = 1.0
    with tempfile.TemporaryDirectory() as tmp, PostgresServer() as server:
        for store, requirement in TWINS.items():
            started, hits = time.perf_counter(), 0
            caught_by: dict[str, int] = {}
            for run in range(args.runs):
                outcomes = certify_concurrency(store, server.dsn, Path(tmp) / f"{run}-{store[-20:]}.json", args.profile)
                hits += outcomes[requirement] == "failed"
                for rid in ("ES-CONC-001", "ES-CONC-002"):
                    caught_by[rid] = caught_by.get(rid, 0) + (outcomes[rid] == "failed")
            rate = hits / args.runs
            worst = min(worst, rate)
            print(f"{store:<50} {requirement} caught {hits:>3}/{args.runs} ({rate:6.1%}); "
                  f"failed per requirement {caught_by}; {(time.perf_counter() - started) / args.runs:5.2f} s/run",
                  flush=True)
    print(f"worst catch rate: {worst:.1%} (target 100%)")
    return 0 if worst == 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
