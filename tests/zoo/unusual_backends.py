"""Correct stores on real backends, built unlike the reference stores: controls the kit must certify.

Each keeps the Go seed's semantics by a route the reference stores do not take, so a kit change
that mistakes an unusual but sound design for a broken one fails its certification test
(``tests/test_unusual_backends.py``).

* :class:`TablePerActorSQLite` (``table_per_actor_sqlite``): one SQLite table per actor, named by
  the hex of the id's UTF-8 bytes; versions kept as zero-padded TEXT (text order is number order
  for the versions 1..2^63-1 a stream can hold); the check-and-append is a single autocommit
  ``INSERT ... SELECT ... WHERE NOT EXISTS (a version at or above it)``: SQLite runs one statement
  under its write lock, so the check and the append are one step, across processes too.  A
  refused insert reads the latest version afterwards: it can only have grown, so the conflict it
  reports held at some instant inside the call.
* :class:`KvHeadJetStream` (``kv_head_jetstream``): a JetStream KV bucket holds each actor's
  latest event, moved with ``kv.update(key, value, last=revision)``; the events below it live in a
  stream.  Before moving the head a writer copies the current head into the stream (a
  ``Nats-Msg-Id`` dedupes the copies, reads dedupe by version), so whenever the head is at V every
  event below V is already in the stream.  A read takes the head, then the stream through an
  ordered consumer, and merges them.
* :class:`TypedColumnsPostgres` (``typed_columns_postgres``): typed columns (``timestamptz``, so
  microseconds and UTC come back: ES-READ-004 is a SHOULD) with the data in a ``json`` column,
  which PostgreSQL keeps verbatim; ids as ``text`` with NUL escaped; the check-and-append one
  ``INSERT ... SELECT ... WHERE NOT EXISTS`` under a per-actor advisory transaction lock.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sqlite3
import threading
from datetime import timezone
from typing import Any

from aether_conformance import Event, VersionConflictError
from aether_conformance.model import INT64_MAX, INT64_MIN


def _conflict(event: Event, current: int) -> VersionConflictError:
    return VersionConflictError(actor_id=event.actor_id, attempted_version=event.version, current_version=current)


def _event_json(event: Event) -> str:
    return json.dumps(event.to_dict(), ensure_ascii=False)


def _event_from_json(text: str | bytes) -> Event:
    return Event.from_dict(json.loads(text), check_schema=False)


# --- SQLite: one table per actor, TEXT versions, INSERT ... WHERE NOT EXISTS -------------------


def _padded(version: int) -> str:
    return "%019d" % version


class TablePerActorSQLite:
    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            # isolation_level=None: autocommit, each statement its own transaction.
            connection = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            self._local.connection = connection
        return connection

    @staticmethod
    def _table(actor_id: str) -> str:
        return '"ev_' + actor_id.encode("utf-8").hex() + '"'

    def save_event(self, event: Event) -> None:
        if event.version <= 0:
            raise _conflict(event, self.get_latest_version(event.actor_id))
        connection, table = self._connection(), self._table(event.actor_id)
        connection.execute(f"CREATE TABLE IF NOT EXISTS {table} (v TEXT PRIMARY KEY, body TEXT NOT NULL) WITHOUT ROWID")
        inserted = connection.execute(
            f"INSERT INTO {table} (v, body) SELECT ?, ? WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE v >= ?)",
            (_padded(event.version), _event_json(event), _padded(event.version)),
        ).rowcount
        if inserted != 1:
            raise _conflict(event, self.get_latest_version(event.actor_id))

    def _rows(self, actor_id: str, query: str, *parameters: Any) -> list[tuple]:
        try:
            return self._connection().execute(query.format(table=self._table(actor_id)), parameters).fetchall()
        except sqlite3.OperationalError as error:
            if "no such table" in str(error):  # an actor that never saved has no table
                return []
            raise

    def get_latest_version(self, actor_id: str) -> int:
        rows = self._rows(actor_id, "SELECT max(v) FROM {table}")
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    def get_events(self, actor_id: str, from_version: int) -> list[Event]:
        lowest = _padded(min(max(from_version, 0), INT64_MAX))
        rows = self._rows(actor_id, "SELECT body FROM {table} WHERE v >= ? ORDER BY v", lowest)
        return [_event_from_json(body) for (body,) in rows]


def table_per_actor_sqlite() -> TablePerActorSQLite:
    return TablePerActorSQLite(os.environ["AETHER_SQLITE_PATH"])


# --- JetStream: KV head with revision CAS, events in a stream ----------------------------------

_STREAM = "UNUSUAL_KV_EVENTS"
_BUCKET = "UNUSUAL_KV_HEADS"
# Documented limits (ES-ACTOR-003, ES-LIMIT-001): a key must fit in a subject, an event in the
# server's 1 MiB max_payload with its headers.
_MAX_ACTOR_CHARS = 256
_MAX_EVENT_BYTES = 900_000


class KvHeadJetStream:
    """A blocking handle; the nats-py client runs on an event loop in a daemon thread of its own."""

    def __init__(self, url: str) -> None:
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="kv-head-loop", daemon=True).start()
        self._run(self._connect(url))

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    async def _connect(self, url: str) -> None:
        import nats
        import nats.js.errors
        from nats.js.api import StreamConfig

        self._nc = await nats.connect(url)
        self._js = self._nc.jetstream()
        try:
            self._kv = await self._js.key_value(_BUCKET)
        except nats.js.errors.BucketNotFoundError:
            self._kv = await self._js.create_key_value(bucket=_BUCKET, history=1)
        await self._js.add_stream(StreamConfig(name=_STREAM, subjects=["unusual.kv.>"]))

    @staticmethod
    def _key(actor_id: str) -> str:
        # Unpadded base32 has no '.', '*', '>' or whitespace; the prefix keeps the empty id a key.
        return "k" + base64.b32encode(actor_id.encode("utf-8")).decode().rstrip("=")

    @staticmethod
    def _storable(actor_id: str) -> bool:
        return 0 < len(actor_id) <= _MAX_ACTOR_CHARS

    async def _head(self, key: str) -> tuple[Event | None, int]:
        import nats.js.errors

        try:
            entry = await self._kv.get(key)
        except nats.js.errors.KeyNotFoundError:
            return None, 0
        return _event_from_json(entry.value), entry.revision

    async def _save(self, event: Event) -> None:
        import nats.js.errors

        key, body = self._key(event.actor_id), _event_json(event).encode()
        while True:
            head, revision = await self._head(key)
            latest = head.version if head else 0
            if event.version <= latest:
                raise _conflict(event, latest)
            if head is not None:  # every event below the new head must be in the stream first
                await self._js.publish(f"unusual.kv.{key}", _event_json(head).encode(), stream=_STREAM,
                                       headers={"Nats-Msg-Id": f"{key}:{head.version}"})
            try:
                if revision:
                    await self._kv.update(key, body, last=revision)
                else:
                    await self._kv.create(key, body)
                return
            except nats.js.errors.KeyWrongLastSequenceError:
                continue  # another writer moved the head: check against the new one

    async def _events(self, actor_id: str) -> list[Event]:
        import nats.js.errors

        key = self._key(actor_id)
        head, _ = await self._head(key)
        if head is None:
            return []
        subject = f"unusual.kv.{key}"
        try:
            last = (await self._js.get_last_msg(_STREAM, subject)).seq
        except nats.js.errors.NotFoundError:
            last = 0
        by_version = {head.version: head}
        if last:
            subscription = await self._js.subscribe(subject, ordered_consumer=True, stream=_STREAM)
            try:
                while True:
                    message = await subscription.next_msg(timeout=20)
                    copied = _event_from_json(message.data)
                    by_version.setdefault(copied.version, copied)
                    if message.metadata.sequence.stream >= last:
                        break
            finally:
                await subscription.unsubscribe()
        return [by_version[version] for version in sorted(by_version)]

    def save_event(self, event: Event) -> None:
        if not self._storable(event.actor_id):
            raise ValueError(f"actor_id: must be 1-{_MAX_ACTOR_CHARS} characters, got {len(event.actor_id)}")
        if len(_event_json(event).encode()) > _MAX_EVENT_BYTES:
            raise ValueError(f"event: its JSON is over the documented {_MAX_EVENT_BYTES} bytes")
        self._run(self._save(event))

    def get_latest_version(self, actor_id: str) -> int:
        if not self._storable(actor_id):
            return 0
        head, _ = self._run(self._head(self._key(actor_id)))
        return head.version if head else 0

    def get_events(self, actor_id: str, from_version: int) -> list[Event]:
        if not self._storable(actor_id):
            return []
        return [event for event in self._run(self._events(actor_id)) if event.version >= from_version]


def kv_head_jetstream() -> KvHeadJetStream:
    return KvHeadJetStream(os.environ["AETHER_NATS_URL"])


# --- PostgreSQL: typed columns, timestamptz, INSERT ... WHERE NOT EXISTS under an advisory lock --


def _escape_nul(text: str) -> str:
    # PostgreSQL text cannot hold U+0000: escape it, and the escape character, reversibly.
    return text.replace("\\", "\\\\").replace("\x00", "\\0")


def _unescape_nul(text: str) -> str:
    out, index = [], 0
    while index < len(text):
        if text[index] == "\\":
            out.append("\x00" if text[index + 1] == "0" else "\\")
            index += 2
        else:
            out.append(text[index])
            index += 1
    return "".join(out)


class TypedColumnsPostgres:
    def __init__(self, dsn: str) -> None:
        import psycopg

        self.dsn = dsn
        self._local = threading.local()
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute("SELECT pg_advisory_lock(7311)")  # concurrent CREATE ... IF NOT EXISTS can race
            connection.execute(
                "CREATE TABLE IF NOT EXISTS unusual_typed_events (actor text NOT NULL, version bigint NOT NULL, "
                "id text NOT NULL, event_type text NOT NULL, command_id text NOT NULL, data json, "
                "ts timestamptz NOT NULL, PRIMARY KEY (actor, version))"
            )

    def _connection(self):
        import psycopg

        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = psycopg.connect(self.dsn, autocommit=True)
            connection.execute("SET TimeZone = 'UTC'")
            self._local.connection = connection
        return connection

    def save_event(self, event: Event) -> None:
        connection, actor = self._connection(), _escape_nul(event.actor_id)
        data = None if event.data is None else json.dumps(event.data, ensure_ascii=False)
        with connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (actor,))
            inserted = connection.execute(
                "INSERT INTO unusual_typed_events SELECT %s, %s, %s, %s, %s, %s::json, %s "
                "WHERE %s > 0 AND NOT EXISTS (SELECT 1 FROM unusual_typed_events WHERE actor = %s AND version >= %s)",
                (actor, event.version, _escape_nul(event.id), _escape_nul(event.event_type),
                 _escape_nul(event.command_id), data, event.timestamp, event.version, actor, event.version),
            ).rowcount
            if inserted == 1:
                return
            (latest,) = connection.execute(
                "SELECT coalesce(max(version), 0) FROM unusual_typed_events WHERE actor = %s", (actor,)
            ).fetchone()
        raise _conflict(event, latest)

    def get_latest_version(self, actor_id: str) -> int:
        return self._connection().execute(
            "SELECT coalesce(max(version), 0) FROM unusual_typed_events WHERE actor = %s", (_escape_nul(actor_id),)
        ).fetchone()[0]

    def get_events(self, actor_id: str, from_version: int) -> list[Event]:
        rows = self._connection().execute(
            "SELECT id, event_type, command_id, version, data::text, ts FROM unusual_typed_events "
            "WHERE actor = %s AND version >= %s ORDER BY version",
            (_escape_nul(actor_id), min(max(from_version, INT64_MIN), INT64_MAX)),
        ).fetchall()
        return [
            Event(id=_unescape_nul(event_id), event_type=_unescape_nul(event_type), actor_id=actor_id,
                  command_id=_unescape_nul(command_id), version=version,
                  data=None if data is None else json.loads(data), timestamp=ts.astimezone(timezone.utc))
            for event_id, event_type, command_id, version, data, ts in rows
        ]


def typed_columns_postgres() -> TypedColumnsPostgres:
    return TypedColumnsPostgres(os.environ["AETHER_POSTGRES_DSN"])
