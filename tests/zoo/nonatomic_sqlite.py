"""A SQLite store that checks, then inserts, in autocommit mode: safe for one thread, not for two processes.

It is what one writes first: ``SELECT MAX(version)``, compare, ``INSERT`` —
without ``BEGIN IMMEDIATE`` around the pair and without a key on
(actor, version).  A millisecond of work between the check and the insert
stands for the application code that usually sits there.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time

from aether_conformance import Event, VersionConflictError
from aether_conformance.timestamps import format_go_time, parse_go_time


class NonAtomicSQLiteStore:
    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        self._db().execute(
            "CREATE TABLE IF NOT EXISTS naive_events (actor_id TEXT, version INTEGER, id TEXT, "
            "event_type TEXT, command_id TEXT, data TEXT, timestamp TEXT)"
        )

    @classmethod
    def from_environment(cls) -> NonAtomicSQLiteStore:
        return cls(os.environ["AETHER_SQLITE_PATH"])

    def _db(self) -> sqlite3.Connection:
        if getattr(self._local, "db", None) is None:
            self._local.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._local.db.execute("PRAGMA journal_mode = WAL")
        return self._local.db

    def get_latest_version(self, actor_id: str) -> int:
        row = self._db().execute("SELECT COALESCE(MAX(version), 0) FROM naive_events WHERE actor_id = ?", (actor_id,))
        return row.fetchone()[0]

    def save_event(self, event: Event) -> None:
        latest = self.get_latest_version(event.actor_id)
        if event.version <= latest:
            raise VersionConflictError(actor_id=event.actor_id, attempted_version=event.version, current_version=latest)
        time.sleep(0.001)
        self._db().execute(
            "INSERT INTO naive_events VALUES (?, ?, ?, ?, ?, ?, ?)",
            (event.actor_id, event.version, event.id, event.event_type, event.command_id,
             json.dumps(event.data), format_go_time(event.timestamp)),
        )

    def get_events(self, actor_id: str, from_version: int) -> list[Event]:
        rows = self._db().execute(
            "SELECT id, event_type, actor_id, command_id, version, data, timestamp FROM naive_events "
            "WHERE actor_id = ? AND version >= ? ORDER BY version, rowid",
            (actor_id, max(from_version, -(2**63))),
        )
        return [
            Event(id=r[0], event_type=r[1], actor_id=r[2], command_id=r[3], version=r[4],
                  data=json.loads(r[5]), timestamp=parse_go_time(r[6]))
            for r in rows
        ]
