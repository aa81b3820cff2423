"""The PostgreSQL reference store: the version check and the append are one statement.

Tables (in a schema named by ``namespace``, ``aether`` by default)::

    streams   (actor_id bytea PRIMARY KEY, version bigint)          -- the latest version
    events    (actor_id bytea, version bigint, save_id uuid, event json,
               PRIMARY KEY (actor_id, version))
    snapshots (actor_id bytea PRIMARY KEY, version bigint, snapshot json)

**Atomic check-and-append.**  A save is one statement, in autocommit::

    WITH claimed AS (INSERT INTO streams ... VALUES (actor, v) WHERE v > 0
                     ON CONFLICT (actor_id) DO UPDATE SET version = v WHERE streams.version < v
                     RETURNING version)
    INSERT INTO events ... SELECT ... FROM claimed

``INSERT ... ON CONFLICT DO UPDATE`` locks the actor's ``streams`` row and
evaluates its ``WHERE`` against the latest committed version of that row,
after waiting for any writer that holds it (two first saves of a new actor
meet in the unique index the same way): it is the per-actor row lock of
``SELECT ... FOR UPDATE`` with the check and the update in the same step, at
READ COMMITTED, in one round trip and one commit.  No row comes back when the
version is not above the latest, and nothing is written.  We chose it over a
transaction-level advisory lock (which needs a hash of the id, a separate
check and an explicit transaction: three round trips) and over SERIALIZABLE
with retry (under contention on one actor most attempts would fail and retry;
and a store that forgot the retry loop would surface serialization errors).
The events primary key would turn a duplicate version that slipped past the
check into an error rather than a second row.

**Unknown outcomes.**  A connection that breaks during a save (a server crash,
a dropped socket) leaves the save's outcome unknown.  The store does not
guess: it reconnects, makes sure the old session is gone (it terminates it by
PID and start time, and waits until ``pg_stat_activity`` no longer lists it,
so its transaction has committed or rolled back for good), then reads the
event row at the saved version.  Every save call carries a fresh ``save_id``;
if the row holds it, the save happened and returns; otherwise it did not and
never will, and the save is tried again (and may now conflict).

**Exact round-trips.**  Actor ids are ``bytea`` (their UTF-8): PostgreSQL
``text`` cannot hold U+0000 and compares by collation, a byte string holds any
id and compares exactly.  Events and snapshots are kept as their Go JSON
(``Event.to_dict``) in ``json`` columns, which store the text as written:
key order, big integers, floats, ``null`` versus ``{}``, ``\\u0000`` escapes
(which ``jsonb`` refuses) and the RFC 3339 timestamp with its nanoseconds
(``timestamptz`` stops at microseconds) all come back unchanged.  Versions are
``bigint``, the int64 range exactly.

**Refusals** (ValueError, nothing stored): lone surrogates anywhere (no UTF-8
exists for them), values JSON cannot carry (NaN, non-str keys, cycles),
actor ids over :data:`MAX_ACTOR_ID_BYTES` (a btree index entry must fit in a
page), and events or snapshots whose JSON exceeds :data:`MAX_ENCODED_BYTES`.

psycopg 3: :class:`PostgresStore` is the async handle (``psycopg.AsyncConnection``,
a small pool of connections per handle, so concurrent tasks contend in the
server); :class:`SyncPostgresStore` runs one on an event loop in its own
thread, like the JetStream store.  The factories ``shared_store`` (sync) and
``async_store`` read the DSN from ``AETHER_POSTGRES_DSN``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from aether_conformance import ActorSnapshot, Event, VersionConflictError
from aether_conformance.model import INT64_MAX, INT64_MIN

__all__ = [
    "PostgresStore",
    "SyncPostgresStore",
    "shared_store",
    "async_store",
    "DSN_ENV",
    "MAX_ACTOR_ID_BYTES",
    "MAX_ENCODED_BYTES",
]

DSN_ENV = "AETHER_POSTGRES_DSN"
# A btree entry must fit in a third of an 8 KiB page (2,704 bytes, less overhead); 2,000 bytes
# of UTF-8 is 500 characters at the very least, beyond the 256 every store must accept.
MAX_ACTOR_ID_BYTES = 2000
# PostgreSQL's own ceiling for one value is 1 GB; far below it, a save stays one reasonable message.
MAX_ENCODED_BYTES = 64 * 1024 * 1024

_NAMESPACE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_SCHEMA_LOCK = 0x616574686572  # "aether": serialises concurrent CREATE ... IF NOT EXISTS, which can race

T = TypeVar("T")


# -- encoding ----------------------------------------------------------------------------


def _utf8(field: str, text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(
            f"{field}: must be Unicode text encodable as UTF-8, but has a lone surrogate at index {error.start}"
        ) from None


def _check_json(value: Any, path: str, open_containers: set[int]) -> None:
    """Refuse what JSON cannot carry back unchanged, naming where it is."""
    if value is None or isinstance(value, (bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path}: {value!r} is not a JSON number (no NaN or infinity)")
        return
    if isinstance(value, str):
        if not value.isascii():
            _utf8(path, value)
        return
    if isinstance(value, (dict, list)):
        if id(value) in open_containers:
            raise ValueError(f"{path}: contains itself; JSON has no circular references")
        open_containers.add(id(value))
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise ValueError(f"{path}: key {key!r} is a {type(key).__name__}; JSON object keys are strings")
                if not key.isascii():
                    _utf8(f"{path} key {key!r}", key)
                _check_json(item, f"{path}[{key!r}]", open_containers)
        else:
            for index, item in enumerate(value):
                _check_json(item, f"{path}[{index}]", open_containers)
        open_containers.discard(id(value))
        return
    raise ValueError(f"{path}: a {type(value).__name__} is not JSON (null, bool, number, string, list, dict)")


def _encode(owner: str, texts: dict[str, str], free_name: str, free_value: Any, document: dict[str, Any]) -> str:
    for name, text in texts.items():
        if not text.isascii():
            _utf8(f"{owner}.{name}", text)
    try:
        _check_json(free_value, f"{owner}.{free_name}", set())
    except RecursionError:
        raise ValueError(f"{owner}.{free_name}: nested too deeply to encode as JSON") from None
    # json.dumps escapes U+0000 (and every control character) as \u0000, which a json column keeps.
    text = json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    size = len(text.encode("utf-8"))
    if size > MAX_ENCODED_BYTES:
        raise ValueError(
            f"{owner}: its JSON is {size} bytes, over this store's limit of {MAX_ENCODED_BYTES} bytes; "
            "nothing was stored"
        )
    return text


def encode_event(event: Event) -> str:
    """The stored form of ``event``: its Go JSON (``Event.to_dict``), compact."""
    texts = {"id": event.id, "event_type": event.event_type, "command_id": event.command_id}
    return _encode("Event", texts, "data", event.data, event.to_dict())


def encode_snapshot(snapshot: ActorSnapshot) -> str:
    return _encode("ActorSnapshot", {}, "state", snapshot.state, snapshot.to_dict())


def actor_key(actor_id: str) -> bytes:
    """The ``bytea`` key of ``actor_id`` for a save; ValueError for an id the store refuses."""
    if not isinstance(actor_id, str):
        raise TypeError(f"actor_id: must be a str, got {type(actor_id).__name__}")
    key = _utf8("actor_id", actor_id)
    if len(key) > MAX_ACTOR_ID_BYTES:
        raise ValueError(
            f"actor_id: its UTF-8 is {len(key)} bytes, over this store's limit of {MAX_ACTOR_ID_BYTES} "
            "(a PostgreSQL index entry must fit in a page)"
        )
    return key


def _read_key(actor_id: str) -> bytes:
    """The key to look ``actor_id`` up by: an id no save accepts has its own key, under which nothing is."""
    if not isinstance(actor_id, str):
        raise TypeError(f"actor_id: must be a str, got {type(actor_id).__name__}")
    return actor_id.encode("utf-8", "surrogatepass")


def _decode_event(document: Any) -> Event:
    # Only this store writes these rows, from Event.to_dict: the schema check would re-prove that
    # on every replay (the constructor still checks the types).
    return Event.from_dict(document, check_schema=False)


# -- the async handle ------------------------------------------------------------------------


class _Session:
    """A pooled connection, with what identifies its server process (to end it for certain)."""

    __slots__ = ("conn", "backend_pid", "backend_start")

    def __init__(self, conn: psycopg.AsyncConnection[Any], backend_pid: int, backend_start: Any) -> None:
        self.conn = conn
        self.backend_pid = backend_pid
        self.backend_start = backend_start

    @property
    def reusable(self) -> bool:
        return not self.conn.closed and self.conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


class _LostSession(Exception):
    """A save's connection broke: its outcome is unknown until settled."""

    def __init__(self, session: _Session, cause: psycopg.OperationalError) -> None:
        super().__init__(str(cause))
        self.session = session
        self.cause = cause


class PostgresStore:
    """An async event and snapshot store on a PostgreSQL server.

    Handles with the same DSN and ``namespace`` (a schema name) share a store.
    ``pool_size`` bounds this handle's connections (calls beyond it wait for
    one); ``op_timeout`` bounds one call including its reconnects across a
    server restart; ``connect_timeout`` one connection attempt.
    """

    def __init__(
        self,
        dsn: str | None = None,
        *,
        namespace: str = "aether",
        pool_size: int = 16,
        op_timeout: float = 60.0,
        connect_timeout: float = 5.0,
    ) -> None:
        if not _NAMESPACE.fullmatch(namespace):
            raise ValueError(f"namespace: must match {_NAMESPACE.pattern} (it names a schema), got {namespace!r}")
        if pool_size < 1:
            raise ValueError(f"pool_size: must be at least 1, got {pool_size}")
        dsn = dsn or os.environ.get(DSN_ENV)
        if not dsn:
            raise ValueError(
                f"dsn: none given and ${DSN_ENV} is unset; start a server with "
                "`python -m aether_conformance.postgres_server` or run with `aether-conformance run ... --postgres-server`"
            )
        self.dsn = dsn
        self.namespace = namespace
        self.op_timeout = op_timeout
        self.connect_timeout = connect_timeout
        self._idle: list[_Session] = []
        self._slots: asyncio.Semaphore | None = None
        self._pool_size = pool_size
        self._schema_ready = False
        self._closed = False
        schema = sql.Identifier(namespace)
        self._sql = {name: statement.format(schema=schema) for name, statement in _STATEMENTS.items()}
        self._schema_sql = [statement.format(schema=schema) for statement in _SCHEMA]

    # -- connections ---------------------------------------------------------------------
    async def connect(self) -> PostgresStore:
        """Create the schema and tables if missing; idempotent.

        Not retried: a handle that cannot reach its server at all fails at once with
        psycopg's own reason (a wrong DSN should not look like a slow server).
        """
        await self._create_schema()
        return self

    async def _create_schema(self) -> None:
        async with self._lease() as session:
            async with session.conn.transaction():
                await session.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                for statement in self._schema_sql:
                    await session.conn.execute(statement)
        self._schema_ready = True

    async def _open(self) -> _Session:
        conn = await psycopg.AsyncConnection.connect(
            self.dsn, autocommit=True, connect_timeout=max(1, round(self.connect_timeout)),
            application_name="aether-conformance postgres store",
        )
        try:
            cursor = await conn.execute(
                "SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()"
            )
            pid, started = await cursor.fetchone()  # type: ignore[misc]
        except BaseException:
            await conn.close()
            raise
        return _Session(conn, pid, started)

    @contextlib.asynccontextmanager
    async def _lease(self) -> AsyncIterator[_Session]:
        if self._closed:
            raise RuntimeError("this PostgresStore handle is closed")
        if self._slots is None:  # made here, in the loop that uses it
            self._slots = asyncio.Semaphore(self._pool_size)
        async with self._slots:
            session = self._idle.pop() if self._idle else await self._open()
            try:
                yield session
            finally:
                if session.reusable and not self._closed:
                    self._idle.append(session)
                else:
                    lost = session.conn.broken
                    await session.conn.close()
                    if lost:  # the server went away: the idle connections are most likely gone too
                        idle, self._idle = self._idle, []
                        for stale in idle:
                            await stale.conn.close()

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for session in idle:
            await session.conn.close()

    async def __aenter__(self) -> PostgresStore:
        return await self.connect()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- retrying --------------------------------------------------------------------------
    def _deadline(self) -> float:
        return asyncio.get_running_loop().time() + self.op_timeout

    async def _retry(self, deadline: float, operation: Callable[[], Awaitable[T]]) -> T:
        """Run an idempotent operation, retrying lost connections until ``deadline``."""
        attempt = 0
        while True:
            try:
                return await operation()
            except psycopg.OperationalError as error:
                attempt += 1
                await self._pause(deadline, attempt, error)

    async def _pause(self, deadline: float, attempt: int, error: Exception) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() >= deadline:
            raise TimeoutError(
                f"PostgreSQL at {self.dsn} did not answer within {self.op_timeout}s: {type(error).__name__}: {error}"
            ) from error
        await asyncio.sleep(min(0.05 * attempt, 0.5, max(deadline - loop.time(), 0)))

    async def _fetch(self, statement: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        async def attempt() -> list[tuple[Any, ...]]:
            if not self._schema_ready:
                await self._create_schema()
            async with self._lease() as session:
                cursor = await session.conn.execute(self._sql[statement], params)
                return await cursor.fetchall()

        return await self._retry(self._deadline(), attempt)

    # -- events --------------------------------------------------------------------------------
    async def save_event(self, event: Event) -> None:
        if not isinstance(event, Event):
            raise TypeError(f"save_event expects an Event, got {type(event).__name__}")
        key = actor_key(event.actor_id)
        document = encode_event(event)
        save_id = uuid.uuid4()
        deadline = self._deadline()
        lost: _LostSession | None = None
        attempt = 0
        while True:
            try:
                if not self._schema_ready:
                    await self._create_schema()
                if lost is not None and await self._landed(lost.session, key, event.version, save_id):
                    return
                lost = None  # settled: that attempt did not land and never will
                saved = await self._try_save(key, event.version, save_id, document)
            except _LostSession as error:
                lost = error
                attempt += 1
                await self._pause(deadline, attempt, error.cause)
                continue
            except psycopg.OperationalError as error:  # before the save was sent: nothing to settle
                attempt += 1
                await self._pause(deadline, attempt, error)
                continue
            if saved:
                return
            rows = await self._fetch("latest", (key,))
            raise VersionConflictError(
                actor_id=event.actor_id,
                attempted_version=event.version,
                current_version=rows[0][0] if rows else 0,
            )

    async def _try_save(self, key: bytes, version: int, save_id: uuid.UUID, document: str) -> bool:
        async with self._lease() as session:
            try:
                return await self._send_save(session.conn, (key, version, version, save_id, document))
            except psycopg.OperationalError as error:
                if session.conn.closed or session.conn.broken:
                    raise _LostSession(session, error) from error
                raise

    async def _send_save(self, conn: psycopg.AsyncConnection[Any], params: tuple[Any, ...]) -> bool:
        """Run the check-and-append; True when it saved (tests override it to lose the answer)."""
        cursor = await conn.execute(self._sql["save"], params)
        return await cursor.fetchone() is not None

    async def _landed(self, lost: _Session, key: bytes, version: int, save_id: uuid.UUID) -> bool:
        """Whether the save sent on the lost session committed; it is certain once that session is gone."""
        async with self._lease() as session:
            while True:
                # Ends the old session if it still runs (a dropped socket, not a crash), then waits for it.
                cursor = await session.conn.execute(self._sql["end_session"], (lost.backend_pid, lost.backend_start))
                if await cursor.fetchone() is None:
                    break
                await asyncio.sleep(0.01)
            cursor = await session.conn.execute(self._sql["saved_by"], (key, version))
            row = await cursor.fetchone()
        return row is not None and row[0] == save_id

    async def get_events(self, actor_id: str, from_version: int) -> list[Event]:
        if isinstance(from_version, bool) or not isinstance(from_version, int):
            raise TypeError(f"from_version: must be an int, got {type(from_version).__name__}")
        key = _read_key(actor_id)
        if from_version > INT64_MAX:
            return []
        rows = await self._fetch("events", (key, max(from_version, INT64_MIN)))
        return [_decode_event(document) for (document,) in rows]

    async def get_latest_version(self, actor_id: str) -> int:
        rows = await self._fetch("latest", (_read_key(actor_id),))
        return rows[0][0] if rows else 0

    # -- snapshots -----------------------------------------------------------------------------
    async def save_snapshot(self, snapshot: ActorSnapshot) -> None:
        """Keep ``snapshot`` if its version is above the kept one's (ties: the first saved wins).

        Idempotent, so a lost connection is simply retried: if the first attempt
        landed, the retry finds an equal version and changes nothing.
        """
        if not isinstance(snapshot, ActorSnapshot):
            raise TypeError(f"save_snapshot expects an ActorSnapshot, got {type(snapshot).__name__}")
        key = actor_key(snapshot.actor_id)
        document = encode_snapshot(snapshot)
        await self._fetch("save_snapshot", (key, snapshot.version, document))

    async def get_latest_snapshot(self, actor_id: str) -> ActorSnapshot | None:
        rows = await self._fetch("snapshot", (_read_key(actor_id),))
        return ActorSnapshot.from_dict(rows[0][0]) if rows else None


_SCHEMA = (
    sql.SQL("CREATE SCHEMA IF NOT EXISTS {schema}"),
    sql.SQL("CREATE TABLE IF NOT EXISTS {schema}.streams (actor_id bytea PRIMARY KEY, version bigint NOT NULL)"),
    sql.SQL(
        "CREATE TABLE IF NOT EXISTS {schema}.events ("
        " actor_id bytea NOT NULL, version bigint NOT NULL, save_id uuid NOT NULL, event json NOT NULL,"
        " PRIMARY KEY (actor_id, version))"
    ),
    sql.SQL(
        "CREATE TABLE IF NOT EXISTS {schema}.snapshots ("
        " actor_id bytea PRIMARY KEY, version bigint NOT NULL, snapshot json NOT NULL)"
    ),
)

_STATEMENTS = {
    # The check-and-append (see the module docstring); a row back means saved.
    "save": sql.SQL(
        "WITH claimed AS ("
        " INSERT INTO {schema}.streams AS s (actor_id, version) SELECT %s, %s::bigint AS v WHERE %s::bigint > 0"
        " ON CONFLICT (actor_id) DO UPDATE SET version = excluded.version WHERE s.version < excluded.version"
        " RETURNING actor_id, version)"
        " INSERT INTO {schema}.events (actor_id, version, save_id, event)"
        " SELECT actor_id, version, %s, %s::json FROM claimed RETURNING version"
    ),
    "latest": sql.SQL("SELECT version FROM {schema}.streams WHERE actor_id = %s"),
    "events": sql.SQL("SELECT event FROM {schema}.events WHERE actor_id = %s AND version >= %s ORDER BY version"),
    "saved_by": sql.SQL("SELECT save_id FROM {schema}.events WHERE actor_id = %s AND version = %s"),
    # A row back means the session still exists (just signalled); none means it has ended.
    "end_session": sql.SQL(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = %s AND backend_start = %s"
    ),
    # Strict "<" keeps the first snapshot saved among those of equal version, as the Go seed does.
    "save_snapshot": sql.SQL(
        "INSERT INTO {schema}.snapshots AS k (actor_id, version, snapshot) VALUES (%s, %s, %s::json)"
        " ON CONFLICT (actor_id) DO UPDATE SET version = excluded.version, snapshot = excluded.snapshot"
        " WHERE k.version < excluded.version RETURNING version"
    ),
    "snapshot": sql.SQL("SELECT snapshot FROM {schema}.snapshots WHERE actor_id = %s"),
}


# -- the sync handle -------------------------------------------------------------------------


class SyncPostgresStore:
    """A blocking handle: a :class:`PostgresStore` on an event loop in a daemon thread.

    Calls may come from several threads at once; they run concurrently on the
    loop, each on its own pooled connection.
    """

    def __init__(self, dsn: str | None = None, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="aether-postgres-loop", daemon=True)
        self._thread.start()
        self._closed = False
        try:
            self._store = self._run(self._make_store(dsn, options))
        except BaseException:
            self._stop_loop()
            raise

    async def _make_store(self, dsn: str | None, options: dict[str, Any]) -> PostgresStore:
        return await PostgresStore(dsn, **options).connect()

    @property
    def dsn(self) -> str:
        return self._store.dsn

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coroutine.close()
            raise RuntimeError("this SyncPostgresStore handle is closed")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def save_event(self, event: Event) -> None:
        self._run(self._store.save_event(event))

    def get_events(self, actor_id: str, from_version: int) -> list[Event]:
        return self._run(self._store.get_events(actor_id, from_version))

    def get_latest_version(self, actor_id: str) -> int:
        return self._run(self._store.get_latest_version(actor_id))

    def save_snapshot(self, snapshot: ActorSnapshot) -> None:
        self._run(self._store.save_snapshot(snapshot))

    def get_latest_snapshot(self, actor_id: str) -> ActorSnapshot | None:
        return self._run(self._store.get_latest_snapshot(actor_id))

    def close(self) -> None:
        if self._closed:
            return
        try:
            self._run(self._store.close())
        finally:
            self._closed = True
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> SyncPostgresStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# -- factories -------------------------------------------------------------------------------


def shared_store() -> SyncPostgresStore:
    """Zero-argument factory: a new blocking handle (its own connections) to ``$AETHER_POSTGRES_DSN``."""
    return SyncPostgresStore()


async def async_store() -> PostgresStore:
    """Zero-argument factory: a new async handle, connected in the caller's running loop."""
    return await PostgresStore().connect()
