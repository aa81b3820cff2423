"""The durable reference store: events and snapshots in one SQLite database file.

Only the standard library's ``sqlite3``.  What makes it correct:

* **Atomic check-and-append across threads and processes.**  A save runs
  ``BEGIN IMMEDIATE`` (take SQLite's single write lock), reads the actor's
  ``MAX(version)``, compares, ``INSERT``s and ``COMMIT``s.  The lock is the
  database's, so it holds between processes, not just between threads.  The
  ``PRIMARY KEY (actor_id, version)`` is a second line of defence: a
  duplicate version that slipped past the check becomes a
  :class:`VersionConflictError`, never an ``IntegrityError``.
* **Writers wait rather than fail.**  WAL mode lets readers run beside the one
  writer; ``busy_timeout`` (30 s by default) makes a writer queue for the lock.
  No retry loop of our own: SQLite skips its busy handler only where waiting
  could deadlock, which ``BEGIN IMMEDIATE`` in WAL mode rules out (it waits
  out a WAL recovery after a crash too), so a retry would run only once the
  same timeout had passed.
* **A rejected or failed save stores nothing**: every write is one
  transaction, rolled back on any exception.
* **Durable acknowledgement**: ``synchronous=FULL``, so a save that returned
  survives a crash of the process and of the machine.
* **Exact round-trips**: versions are SQLite INTEGERs (the int64 range);
  ``data``/``state`` are kept as the JSON text this module writes (``null``
  and ``{}`` distinct; floats, big ints and Unicode exact); timestamps as Go's
  RFC 3339 text (``format_go_time``), so nanoseconds and offset survive.
  Strings, actor ids included, are TEXT: SQLite stores an embedded NUL and
  compares TEXT byte for byte (the BINARY collation), so ids are exact.

A handle may be used from several threads: each thread gets its own
connection, so concurrent writers contend in SQLite, not on a Python lock.

The conformance factory is :func:`shared_store`; its database file is
``$AETHER_SQLITE_PATH``, or :func:`default_path` when the variable is unset:
``store.sqlite3`` in a private per-user directory of the temp dir
(``aether-conformance-<uid>``, mode 0700).  That file outlives the run, so
tests against it must use fresh actor ids.  Whatever the path, the store
refuses to open it through anything another local user controls
(``safe_path``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from aether_conformance import ActorSnapshot, Event, VersionConflictError
from aether_conformance.json_values import check_json_value, check_text
from aether_conformance.model import INT64_MAX, INT64_MIN
from aether_conformance.timestamps import format_go_time, parse_go_time

from .safe_path import UnsafeDatabasePathError, check_database_path, private_default_dir

__all__ = ["SQLiteEventStore", "shared_store", "default_path", "PATH_ENV", "UnsafeDatabasePathError"]

PATH_ENV = "AETHER_SQLITE_PATH"
DEFAULT_FILE_NAME = "store.sqlite3"
DEFAULT_BUSY_TIMEOUT = 30.0

_SQLITE_CONSTRAINT_PRIMARYKEY = 1555

_SCHEMA = (
    # WITHOUT ROWID clusters rows by (actor_id, version): a stream read is one range scan.
    """CREATE TABLE IF NOT EXISTS events (
        actor_id   TEXT    NOT NULL,
        version    INTEGER NOT NULL,
        id         TEXT    NOT NULL,
        event_type TEXT    NOT NULL,
        command_id TEXT    NOT NULL,
        data       TEXT    NOT NULL,  -- JSON text; 'null' for None
        timestamp  TEXT    NOT NULL,  -- Go RFC 3339 with nanoseconds
        PRIMARY KEY (actor_id, version)
    ) WITHOUT ROWID""",
    # One row per actor: only the best snapshot is ever read, so only it is kept.
    """CREATE TABLE IF NOT EXISTS snapshots (
        actor_id  TEXT    NOT NULL PRIMARY KEY,
        version   INTEGER NOT NULL,
        state     TEXT    NOT NULL,
        timestamp TEXT    NOT NULL
    ) WITHOUT ROWID""",
)

_LATEST = "SELECT COALESCE(MAX(version), 0) FROM events WHERE actor_id = ?"
_INSERT_EVENT = (
    "INSERT INTO events (actor_id, version, id, event_type, command_id, data, timestamp) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_SELECT_EVENTS = (
    "SELECT id, event_type, actor_id, command_id, version, data, timestamp FROM events "
    "WHERE actor_id = ? AND version >= ? ORDER BY version"
)
# Strict ">" keeps the first snapshot saved among those of equal version, as the Go seed does.
_UPSERT_SNAPSHOT = (
    "INSERT INTO snapshots (actor_id, version, state, timestamp) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (actor_id) DO UPDATE SET "
    "version = excluded.version, state = excluded.state, timestamp = excluded.timestamp "
    "WHERE excluded.version > snapshots.version"
)
_SELECT_SNAPSHOT = "SELECT actor_id, version, state, timestamp FROM snapshots WHERE actor_id = ?"

_T = TypeVar("_T")


# --- turning records into rows, refusing what cannot round-trip ---------------------------


def _json_text(field: str, value: dict[str, Any] | None) -> str:
    """The JSON text kept for ``value``; refuses what would not come back from ``json.loads`` equal to itself.

    The model checked the value when the record was built, but a caller may
    have changed it since; and within the depth the model allows, json.loads
    reads back whatever json.dumps wrote (both stop near 1,000 levels).
    """
    check_json_value(field, value, json_only=True)
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _event_row(event: Event) -> tuple:
    for name in ("id", "event_type", "actor_id", "command_id"):
        check_text(f"Event.{name}", getattr(event, name))
    return (
        event.actor_id,
        event.version,
        event.id,
        event.event_type,
        event.command_id,
        _json_text("Event.data", event.data),
        format_go_time(event.timestamp),
    )


def _event_from_row(row: tuple) -> Event:
    event_id, event_type, actor_id, command_id, version, data, stamp = row
    return Event(
        id=event_id,
        event_type=event_type,
        actor_id=actor_id,
        command_id=command_id,
        version=version,
        data=json.loads(data),
        timestamp=parse_go_time(stamp),
    )


def _check_actor_id(actor_id: object) -> None:
    if not isinstance(actor_id, str):
        raise TypeError(f"actor_id: must be a str, got {type(actor_id).__name__}")


# --- the store --------------------------------------------------------------------------


class _Connection:
    """A thread's connection, tagged with the process that opened it.

    A wrapper because ``sqlite3.Connection`` takes no weak references: the
    handle tracks these weakly, so a finished thread's connection is closed
    when its thread-local storage goes, and :meth:`SQLiteEventStore.close`
    still reaches every live one.
    """

    __slots__ = ("raw", "pid", "__weakref__")

    def __init__(self, raw: sqlite3.Connection) -> None:
        self.raw = raw
        self.pid = os.getpid()


class SQLiteEventStore:
    """An event and snapshot store in the SQLite database file at ``path``.

    The file and its tables are created when missing.  Every handle on the same
    file, in this process or another, sees one store.  A path that passes
    through a symlink, directory or file another local user controls is
    refused with :class:`UnsafeDatabasePathError`.
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        self._path = os.fspath(path)
        if self._path == ":memory:" or self._path == "":
            # Each thread's connection would get its own private database.
            raise ValueError(f"path: must name a database file, got {self._path!r}")
        check_database_path(self._path)
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._connections: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._connections_lock = threading.Lock()
        self._closed = False
        self._create_schema()

    @property
    def path(self) -> str:
        return self._path

    # -- connections and transactions --

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError(f"SQLiteEventStore({self._path!r}) is closed")
        conn: _Connection | None = getattr(self._local, "conn", None)
        # A forked child inherits the parent's connection objects; SQLite forbids using them there.
        if conn is None or conn.pid != os.getpid():
            raw = sqlite3.connect(
                self._path,
                timeout=self._busy_timeout,  # sets SQLite's busy_timeout
                isolation_level=None,  # transactions are explicit: BEGIN IMMEDIATE ... COMMIT
                check_same_thread=False,  # only so close() may close it from another thread
            )
            raw.execute("PRAGMA synchronous = FULL")
            conn = _Connection(raw)
            self._local.conn = conn
            with self._connections_lock:
                self._connections.add(conn)
        return conn.raw

    def _write(self, body: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``body`` in its own ``BEGIN IMMEDIATE`` transaction; roll back on any exception."""

        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = body(conn)
            conn.execute("COMMIT")
            return result
        except BaseException:
            # SQLite has already rolled back after some errors (e.g. a full disk).
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _create_schema(self) -> None:
        # Persistent in the file; outside a transaction, because SQLite refuses it inside one.
        mode = self._connection().execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise RuntimeError(f"{self._path}: could not switch to WAL journal mode (SQLite reports {mode!r})")

        def create(conn: sqlite3.Connection) -> None:
            for statement in _SCHEMA:
                conn.execute(statement)

        # Under the write lock, so that handles opening a new file at once do not race.
        self._write(create)

    def close(self) -> None:
        """Close every connection of this handle; call it when no call is in flight."""
        self._closed = True
        with self._connections_lock:
            connections = list(self._connections)
            self._connections.clear()
        for conn in connections:
            conn.raw.close()

    def __enter__(self) -> SQLiteEventStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- events --

    def _check_and_insert(self, conn: sqlite3.Connection, event: Event, row: tuple) -> None:
        latest = self._latest_for_check(conn, event.actor_id)
        if event.version <= latest:
            raise VersionConflictError(
                actor_id=event.actor_id, attempted_version=event.version, current_version=latest
            )
        try:
            conn.execute(_INSERT_EVENT, row)
        except sqlite3.IntegrityError as error:
            if error.sqlite_errorcode != _SQLITE_CONSTRAINT_PRIMARYKEY:
                raise
            # The key caught what the check missed: report the version as it stands now.
            current = conn.execute(_LATEST, (event.actor_id,)).fetchone()[0]
            raise VersionConflictError(
                actor_id=event.actor_id, attempted_version=event.version, current_version=current
            ) from None

    def _latest_for_check(self, conn: sqlite3.Connection, actor_id: str) -> int:
        """The version the conflict check compares against (tests override it to fake a lost race)."""
        return conn.execute(_LATEST, (actor_id,)).fetchone()[0]

    def save_event(self, event: Event) -> None:
        if not isinstance(event, Event):
            raise TypeError(f"save_event expects an Event, got {type(event).__name__}")
        row = _event_row(event)
        self._write(lambda conn: self._check_and_insert(conn, event, row))

    def get_events(self, actor_id: str, from_version: int) -> list[Event]:
        _check_actor_id(actor_id)
        if isinstance(from_version, bool) or not isinstance(from_version, int):
            raise TypeError(f"from_version: must be an int, got {type(from_version).__name__}")
        if from_version > INT64_MAX:
            return []
        # SQLite cannot bind ints outside int64; no version is below INT64_MIN anyway.
        start = max(from_version, INT64_MIN)
        rows = self._connection().execute(_SELECT_EVENTS, (actor_id, start)).fetchall()
        return [_event_from_row(row) for row in rows]

    def get_latest_version(self, actor_id: str) -> int:
        _check_actor_id(actor_id)
        return self._connection().execute(_LATEST, (actor_id,)).fetchone()[0]

    # -- snapshots --

    def save_snapshot(self, snapshot: ActorSnapshot) -> None:
        if not isinstance(snapshot, ActorSnapshot):
            raise TypeError(f"save_snapshot expects an ActorSnapshot, got {type(snapshot).__name__}")
        check_text("ActorSnapshot.actor_id", snapshot.actor_id)
        row = (
            snapshot.actor_id,
            snapshot.version,
            _json_text("ActorSnapshot.state", snapshot.state),
            format_go_time(snapshot.timestamp),
        )
        self._write(lambda conn: conn.execute(_UPSERT_SNAPSHOT, row))

    def get_latest_snapshot(self, actor_id: str) -> ActorSnapshot | None:
        _check_actor_id(actor_id)
        row = self._connection().execute(_SELECT_SNAPSHOT, (actor_id,)).fetchone()
        if row is None:
            return None
        actor, version, state, stamp = row
        return ActorSnapshot(actor_id=actor, version=version, state=json.loads(state), timestamp=parse_go_time(stamp))


def shared_store() -> SQLiteEventStore:
    """Zero-argument factory for the conformance suite: a new handle on the shared file.

    The file is ``$AETHER_SQLITE_PATH``, or :func:`default_path` when unset;
    spawned processes inherit the variable, so their handles open the same file.
    """
    return SQLiteEventStore(os.environ.get(PATH_ENV) or default_path())


def default_path() -> str:
    """``store.sqlite3`` in ``aether-conformance-<uid>`` of the temp dir, a directory of yours with mode 0700."""
    return os.path.join(private_default_dir(), DEFAULT_FILE_NAME)
