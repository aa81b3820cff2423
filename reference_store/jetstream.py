"""The NATS JetStream reference store: optimistic concurrency checked by the server.

Layout: one file-backed stream ``AETHER_EVENTS`` with one subject per actor,
``aether.events.<token>``, where the token is the unpadded URL-safe base64 of
the actor id's UTF-8 bytes.  Base64url has no '.', '*', '>' or whitespace, so
any id maps to exactly one literal subject token and ids differing only in
case stay apart.  Snapshots live in ``AETHER_SNAPSHOTS`` under
``aether.snapshots.<token>``, one message per subject: the best snapshot.

A save reads the subject's last message (a direct get: its stream sequence
and its version) and publishes with ``Nats-Expected-Last-Subject-Sequence``
set to that sequence, so the server refuses the append if anyone appended
to the actor in between (error 10071).  The version check and the append
are therefore one atomic step on the server; nothing in this process (no
cache, no lock) decides who wins.

A publish that times out has an unknown outcome.  Every save call carries a
unique ``Nats-Msg-Id``; the message the server stored after sequence S is
the only place the attempt can have landed (it was sent expecting S), so the
store reads it back and decides from what is stored, never from the timeout.

Reads: events of a subject are in version order, because every append was
checked against the latest.  ``get_events`` bisects stream sequences (direct
gets by ``next_by_subj``) for the first event at or above ``from_version``
and then fetches the rest with batched direct gets.

On a cluster (``replicas`` > 1, or ``AETHER_NATS_REPLICAS``) the streams
are replicated and the store checks at start that the server made them so:
asking for 3 replicas and getting 1 is an error, not a silent downgrade.
Three things change on a cluster:

* The leader refuses a publish whose subject already has one in flight
  with error 10164 (its in-flight check); that is a conflict like 10071:
  re-read, confirm the current version, retry or raise.
* A direct get may be answered by any replica, a lagging one included, so a
  read alone is not linearizable.  Every read that answers a caller is
  *fenced*: after reading (sequence S, version V) the store publishes a
  short-lived marker on ``<namespace>.fence.<stream>.<uuid>`` that the
  stream accepts only if the actor's subject still ends at S
  (``Nats-Expected-Last-Subject-Sequence-Subject``).  The marker commits
  through the stream's Raft log at one instant inside the call, when V was
  the latest: that instant is the read's linearization point.  A refused
  marker means the read was stale: re-read from the stream leader and fence
  again.  Markers expire after a minute (``Nats-TTL``).
* A publish that straddles a leader election has an unknown outcome; it is
  settled by reading back, as above, never by assuming.

nats-py is asyncio: :class:`JetStreamStore` is the async handle;
:class:`SyncJetStreamStore` runs one in an event loop on its own thread.
The factories ``sync_store`` and ``async_store`` read the server URL(s) from
``AETHER_NATS_URL`` (comma-separated; default ``nats://127.0.0.1:4222``) and
the replica count from ``AETHER_NATS_REPLICAS`` (default 1).
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import re
import threading
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.js.api import Header, StreamConfig

from aether_conformance import ActorSnapshot, Event, VersionConflictError

__all__ = [
    "JetStreamStore",
    "SyncJetStreamStore",
    "sync_store",
    "async_store",
    "actor_token",
    "encode_event",
    "encode_snapshot",
    "decode_event",
    "URL_ENV",
    "REPLICAS_ENV",
    "DEFAULT_URL",
    "MAX_ACTOR_ID_LENGTH",
    "VERSION_HEADER",
]

URL_ENV = "AETHER_NATS_URL"
REPLICAS_ENV = "AETHER_NATS_REPLICAS"
DEFAULT_URL = "nats://127.0.0.1:4222"

# 256 code points of at most 4 UTF-8 bytes each encode to a 1,366-character token,
# so even a direct-get request line for the longest subject stays far below the
# server's 4 KiB control-line limit.
MAX_ACTOR_ID_LENGTH = 256

VERSION_HEADER = "Aether-Version"
WRONG_LAST_SEQUENCE = 10071  # JetStream's JSStreamWrongLastSequenceErrF
IN_FLIGHT_CONFLICT = 10164  # JSStreamWrongLastSequenceConstantErr: the cluster leader's in-flight check
# Both say "the subject's last sequence is not the one you expected": re-read and decide.
_LAST_SEQUENCE_CHANGED = (WRONG_LAST_SEQUENCE, IN_FLIGHT_CONFLICT)
FENCE_TTL = "60s"
STREAM_IN_USE = 10058  # JSStreamNameExistErr: same name, different configuration
NO_SUITABLE_PEERS = 10005  # JSClusterNoPeersErr: a peer the meta leader counts offline for now
# Direct-get batches: how many messages, and at most how many bytes, per request.
# The byte bound keeps a batch far below the subscription's pending-bytes limit.
BATCH_MESSAGES = 1024
BATCH_BYTES = 8 * 1024 * 1024
# Headers are sized with the longest value a sequence can have, so the size check
# made before the first attempt holds for every retry.
_LONGEST_SEQUENCE = str(2**64 - 1)

_NAMESPACE = re.compile(r"[a-z0-9_-]+")

# Failures after which the server may still be there, or back soon: retried until
# the operation's deadline.  A JetStream 503 is a stream still being recovered.
_TRANSIENT = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.StaleConnectionError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
    # A stream leader that lost its quorum, or a replica still catching up, answers these.
    nats.js.errors.ServerError,
)

T = TypeVar("T")


# -- encoding ----------------------------------------------------------------------------


def actor_token(actor_id: str) -> str:
    """The subject token of ``actor_id``: unpadded URL-safe base64 of its UTF-8 bytes."""
    if not isinstance(actor_id, str):
        raise TypeError(f"actor_id: must be a str, got {type(actor_id).__name__}")
    if not actor_id:
        raise ValueError("actor_id: must not be empty (the JetStream store keys a NATS subject by it)")
    if len(actor_id) > MAX_ACTOR_ID_LENGTH:
        raise ValueError(
            f"actor_id: must be at most {MAX_ACTOR_ID_LENGTH} characters "
            f"(the JetStream store keys a NATS subject by it), got {len(actor_id)}"
        )
    raw = _utf8("actor_id", actor_id)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


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
                _check_json(item, f"{path}[{key!r}]", open_containers)
        else:
            for index, item in enumerate(value):
                _check_json(item, f"{path}[{index}]", open_containers)
        open_containers.discard(id(value))
        return
    raise ValueError(f"{path}: a {type(value).__name__} is not JSON (null, bool, number, string, list, dict)")


def _encode(owner: str, texts: dict[str, str], free_name: str, free_value: Any, document: dict[str, Any]) -> bytes:
    for name, text in texts.items():
        if not text.isascii():
            _utf8(f"{owner}.{name}", text)
    try:
        _check_json(free_value, f"{owner}.{free_name}", set())
    except RecursionError:
        raise ValueError(f"{owner}.{free_name}: nested too deeply to encode as JSON") from None
    return json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


def encode_event(event: Event) -> bytes:
    """The stored form of ``event``: its Go JSON (``Event.to_dict``) in UTF-8."""
    texts = {"id": event.id, "event_type": event.event_type, "command_id": event.command_id}
    return _encode("Event", texts, "data", event.data, event.to_dict())


def encode_snapshot(snapshot: ActorSnapshot) -> bytes:
    return _encode("ActorSnapshot", {}, "state", snapshot.state, snapshot.to_dict())


def decode_event(payload: bytes) -> Event:
    """The event :func:`encode_event` stored.

    Only this store writes these subjects, from ``Event.to_dict``, so the
    schema check (about 0.2 ms an event) would only re-prove that on every
    replay; the constructor still checks the types.
    """
    return Event.from_dict(json.loads(payload), check_schema=False)


def _headers_size(headers: dict[str, str]) -> int:
    # The NATS/1.0 header block exactly as the client writes it; the server's
    # max_payload bounds headers and payload together.
    return len(b"NATS/1.0\r\n\r\n") + sum(len(k) + len(v.encode()) + 4 for k, v in headers.items())


# -- what a direct get returns -------------------------------------------------------------


@dataclass(frozen=True)
class _Stored:
    seq: int
    version: int
    msg_id: str | None
    data: bytes


def _stored(msg: Any) -> _Stored:
    headers = msg.headers or {}
    try:
        version = int(headers[VERSION_HEADER])
    except KeyError:
        raise RuntimeError(
            f"message {headers.get('Nats-Sequence')} on {headers.get('Nats-Subject')} has no {VERSION_HEADER} "
            "header: something other than this store wrote to its subjects"
        ) from None
    return _Stored(
        seq=int(headers["Nats-Sequence"]), version=version, msg_id=headers.get(Header.MSG_ID), data=msg.data
    )


def _status_error(msg: Any) -> Exception:
    """The error a direct-get status reply (other than 404, "no such message") stands for."""
    status = (msg.headers or {}).get(Header.STATUS)
    if status == "503":
        return nats.errors.NoRespondersError()
    return nats.js.errors.APIError(code=int(status), description=(msg.headers or {}).get(Header.DESCRIPTION))


async def _ignore_error(error: Exception) -> None:
    pass


def _replicas(given: int | None) -> int:
    if given is None:
        text = os.environ.get(REPLICAS_ENV, "").strip() or "1"
        try:
            given = int(text)
        except ValueError:
            raise ValueError(f"{REPLICAS_ENV}: must be a whole number of stream replicas (1-5), got {text!r}") from None
    if isinstance(given, bool) or not isinstance(given, int) or not 1 <= given <= 5:
        raise ValueError(f"replicas: must be a whole number from 1 to 5 (JetStream's limit), got {given!r}")
    return given


def _check_replicas(stream: str, wanted: int, info: Any) -> None:
    """Fail loudly when the server kept fewer copies than asked: durability is not a best effort."""
    configured = info.config.num_replicas or 1
    peers = 1 + len(info.cluster.replicas or ()) if info.cluster is not None else 1
    # More peers than asked is a replica being moved (a new one catches up before the old leaves).
    if configured != wanted or peers < wanted:
        raise RuntimeError(
            f"stream {stream} was asked for {wanted} replicas but has {configured} configured and "
            f"{peers} placed; refusing to run with fewer copies than asked"
        )


# -- the async handle ------------------------------------------------------------------------


class JetStreamStore:
    """An async event and snapshot store on one NATS connection (opened on first use).

    ``namespace`` names the streams (``<NAMESPACE>_EVENTS``) and subjects
    (``<namespace>.events.>``); handles with the same namespace share a store.
    ``request_timeout`` bounds one request to the server; ``op_timeout`` one
    store call including its retries across a server restart or a leader
    election.  ``url`` may list several servers, comma-separated; ``replicas``
    (default ``$AETHER_NATS_REPLICAS``, else 1) is the streams' replica count.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        namespace: str = "aether",
        request_timeout: float = 5.0,
        op_timeout: float = 30.0,
        replicas: int | None = None,
    ) -> None:
        if not _NAMESPACE.fullmatch(namespace):
            raise ValueError(f"namespace: must match {_NAMESPACE.pattern} (it names streams and subjects), got {namespace!r}")
        self.url = url or os.environ.get(URL_ENV) or DEFAULT_URL
        self.servers = [part.strip() for part in self.url.split(",") if part.strip()]
        if not self.servers:
            raise ValueError(f"url: must name at least one NATS server (comma-separated), got {self.url!r}")
        self.replicas = _replicas(replicas)
        self.request_timeout = request_timeout
        self.op_timeout = op_timeout
        self.events_stream = f"{namespace.upper()}_EVENTS"
        self.snapshots_stream = f"{namespace.upper()}_SNAPSHOTS"
        self._events_prefix = f"{namespace}.events."
        self._snapshots_prefix = f"{namespace}.snapshots."
        self._fence_prefix = {
            self.events_stream: f"{namespace}.fence.events.",
            self.snapshots_stream: f"{namespace}.fence.snapshots.",
        }
        self._nc: Any = None
        self._js: Any = None
        self._connect_lock = asyncio.Lock()
        self._closed = False

    # -- connection ------------------------------------------------------------------------
    async def connect(self) -> JetStreamStore:
        """Connect and create the streams if they do not exist; idempotent."""
        async with self._connect_lock:
            if self._closed:
                raise RuntimeError("this JetStreamStore handle is closed")
            if self._nc is None:
                nc = await nats.connect(
                    self.servers,
                    name="aether-conformance jetstream store",
                    # Keep reconnecting for as long as the handle lives: each call has its own deadline.
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.25,
                    # A paused (SIGSTOPped) server keeps its socket open: notice it within seconds
                    # and move to another server, rather than after the default 4 minutes.
                    ping_interval=2,
                    max_outstanding_pings=3,
                    # Every call has its own retries and deadline and reports its own failure;
                    # the client's default callback would print each reconnect as a traceback.
                    error_cb=_ignore_error,
                )
                try:
                    js = nc.jetstream(timeout=self.request_timeout)
                    # Creating a replicated stream forms its Raft group, which takes far longer than
                    # one request on a busy machine; the same request again is harmless (identical
                    # configuration), so it gets the operation's whole deadline.
                    await self._create_streams(nc.jetstream(timeout=max(self.request_timeout, self.op_timeout)))
                except BaseException:
                    await nc.close()
                    raise
                self._nc, self._js = nc, js
        return self

    async def _create_streams(self, js: Any) -> None:
        replicated = self.replicas > 1

        def subjects(prefix: str, stream: str) -> list[str]:
            # Read fences live in the stream they fence: only its Raft log orders them with the saves.
            return [prefix + ">", self._fence_prefix[stream] + ">"] if replicated else [prefix + ">"]

        fences = {"allow_msg_ttl": True} if replicated else {}
        configs = (
            StreamConfig(
                name=self.events_stream,
                subjects=subjects(self._events_prefix, self.events_stream),
                storage="file",
                allow_direct=True,
                # History is append-only, and save_event relies on it: the message after
                # sequence S is the only place an attempt that expected S can have landed.
                deny_delete=True,
                deny_purge=True,
                num_replicas=self.replicas,
                **fences,
            ),
            StreamConfig(
                name=self.snapshots_stream,
                subjects=subjects(self._snapshots_prefix, self.snapshots_stream),
                storage="file",
                allow_direct=True,
                max_msgs_per_subject=1,
                num_replicas=self.replicas,
                **fences,
            ),
        )
        # A fresh cluster can re-elect its meta leader under load, dropping a create in flight:
        # the request is sent again (identical configuration, so harmless) for twice the
        # operation's deadline, each attempt bounded by the jetstream context's timeout.
        budget = 2 * self.op_timeout
        deadline = asyncio.get_running_loop().time() + budget
        for config in configs:
            # Creating a stream with an identical configuration succeeds, so
            # concurrent first uses all get the same stream.
            attempt = 0
            while True:
                try:
                    info = await js.add_stream(config)
                    break
                except _TRANSIENT as error:
                    attempt += 1
                    await self._pause(deadline, attempt, error, budget)
                except nats.js.errors.APIError as error:
                    if error.err_code == STREAM_IN_USE:
                        raise RuntimeError(
                            f"stream {config.name} exists on {self.url} with a configuration this store "
                            f"did not create ({error.description}); use another namespace"
                        ) from error
                    if error.err_code != NO_SUITABLE_PEERS:
                        raise
                    # A busy cluster's meta leader can miss a peer's heartbeat for a moment;
                    # placement succeeds once it counts the peer again, within the deadline.
                    attempt += 1
                    await self._pause(deadline, attempt, error, budget)
            _check_replicas(config.name, self.replicas, info)

    async def close(self) -> None:
        async with self._connect_lock:
            self._closed = True
            nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            await nc.close()

    async def __aenter__(self) -> JetStreamStore:
        return await self.connect()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _connection(self) -> tuple[Any, Any]:
        if self._nc is None:
            await self.connect()
        return self._nc, self._js

    # -- retries -----------------------------------------------------------------------------
    def _deadline(self) -> float:
        return asyncio.get_running_loop().time() + self.op_timeout

    async def _retry(self, deadline: float, operation: Callable[[], Awaitable[T]]) -> T:
        """Run an idempotent request, retrying transient failures until ``deadline``."""
        attempt = 0
        while True:
            try:
                return await operation()
            except _TRANSIENT as error:
                attempt += 1
                await self._pause(deadline, attempt, error)

    async def _pause(self, deadline: float, attempt: int, error: Exception, budget: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() >= deadline:
            raise TimeoutError(
                f"NATS server at {self.url} did not answer within {budget or self.op_timeout}s: "
                f"{type(error).__name__} {error}"
            ) from error
        await asyncio.sleep(min(0.05 * attempt, 0.5, max(deadline - loop.time(), 0)))

    # -- direct gets ---------------------------------------------------------------------------
    async def _direct(self, subject: str, payload: bytes) -> _Stored | None:
        nc, _ = await self._connection()
        msg = await nc.request(subject, payload, timeout=self.request_timeout)
        if msg.headers and Header.STATUS in msg.headers:
            if msg.headers[Header.STATUS] == "404":
                return None
            raise _status_error(msg)
        return _stored(msg)

    def _last(self, stream: str, subject: str) -> Callable[[], Awaitable[_Stored | None]]:
        return lambda: self._direct(f"$JS.API.DIRECT.GET.{stream}.{subject}", b"")

    def _next(self, stream: str, subject: str, seq: int) -> Callable[[], Awaitable[_Stored | None]]:
        """The first message on ``subject`` at stream sequence ``seq`` or later."""
        request = json.dumps({"seq": seq, "next_by_subj": subject}).encode()
        return lambda: self._direct(f"$JS.API.DIRECT.GET.{stream}", request)

    def _following(self, stream: str, subject: str, seq: int) -> Callable[[], Awaitable[_Stored | None]]:
        """Like :meth:`_next`, but current: from the stream leader when the stream is replicated."""
        if self.replicas > 1:
            return lambda: self._leader_get(stream, subject, seq)
        return self._next(stream, subject, seq)

    def _exact(self, stream: str, seq: int) -> Callable[[], Awaitable[_Stored | None]]:
        if self.replicas > 1:
            return lambda: self._leader_get(stream, None, seq)
        return self._at(stream, seq)

    def _at(self, stream: str, seq: int) -> Callable[[], Awaitable[_Stored | None]]:
        request = json.dumps({"seq": seq}).encode()
        return lambda: self._direct(f"$JS.API.DIRECT.GET.{stream}", request)

    # -- reads through the stream leader, and fences ---------------------------------------------
    async def _leader_get(self, stream: str, subject: str | None, seq: int | None = None) -> _Stored | None:
        """The last message on ``subject`` (``seq`` None), or the first on it at ``seq`` or later,
        or the message at ``seq`` (``subject`` None), as the stream leader answers (STREAM.MSG.GET)."""
        _, js = await self._connection()
        try:
            if subject is None:
                raw = await js.get_msg(stream, seq=seq)
            elif seq is None:
                raw = await js.get_msg(stream, subject=subject)
            else:
                raw = await js.get_msg(stream, seq=seq, subject=subject, next=True)
        except nats.js.errors.NotFoundError:
            return None
        headers = raw.headers or {}
        try:
            version = int(headers[VERSION_HEADER])
        except KeyError:
            raise RuntimeError(
                f"message {raw.seq} on {raw.subject} has no {VERSION_HEADER} header: something other than "
                "this store wrote to its subjects"
            ) from None
        return _Stored(seq=raw.seq, version=version, msg_id=headers.get(Header.MSG_ID), data=raw.data or b"")

    def _latest(self, stream: str, subject: str, from_leader: bool) -> Callable[[], Awaitable[_Stored | None]]:
        if from_leader and self.replicas > 1:
            return lambda: self._leader_get(stream, subject)
        return self._last(stream, subject)

    async def _fence(self, deadline: float, stream: str, subject: str, seq: int) -> bool:
        """Whether ``subject`` still ends at ``seq``, decided by a marker committed through the Raft log."""
        _, js = await self._connection()
        headers = {
            Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value: str(seq),
            "Nats-Expected-Last-Subject-Sequence-Subject": subject,
            "Nats-TTL": FENCE_TTL,
        }
        fence = self._fence_prefix[stream] + uuid.uuid4().hex
        attempt = 0
        while True:
            try:
                await js.publish(fence, b"", timeout=self.request_timeout, headers=headers)
                return True
            except _TRANSIENT as error:  # a marker that landed unseen changes nothing: send another
                attempt += 1
                await self._pause(deadline, attempt, error)
            except nats.js.errors.APIError as error:
                if error.err_code in _LAST_SEQUENCE_CHANGED:
                    return False
                raise

    async def _current_last(self, deadline: float, stream: str, subject: str) -> _Stored | None:
        """The subject's last message as of one instant inside this call (linearizable)."""
        from_leader = False
        attempt = 0
        while True:
            last = await self._retry(deadline, self._latest(stream, subject, from_leader))
            # One copy (a single server, or an unreplicated stream) is always current.
            if self.replicas == 1 or await self._fence(deadline, stream, subject, last.seq if last else 0):
                return last
            # Stale, or another writer's publish was in flight: ask the leader next time.
            from_leader = True
            attempt += 1
            await self._pause(deadline, attempt, TimeoutError(f"the last message on {subject} kept changing"))

    async def _batch(self, stream: str, subject: str, seq: int) -> tuple[list[_Stored], int]:
        """Messages on ``subject`` from stream sequence ``seq`` on, and how many remain after them."""
        nc, _ = await self._connection()
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        try:
            request = {"seq": seq, "next_by_subj": subject, "batch": BATCH_MESSAGES, "max_bytes": BATCH_BYTES}
            await nc.publish(f"$JS.API.DIRECT.GET.{stream}", json.dumps(request).encode(), reply=inbox)
            found: list[_Stored] = []
            while True:
                msg = await sub.next_msg(timeout=self.request_timeout)
                status = (msg.headers or {}).get(Header.STATUS)
                if status is None:
                    found.append(_stored(msg))
                elif status == "204":  # end of batch
                    return found, int(msg.headers.get("Nats-Num-Pending", 0))
                elif status == "404":  # nothing at or after seq
                    return found, 0
                else:
                    raise _status_error(msg)
        finally:
            await sub.unsubscribe()

    async def _read_from(self, deadline: float, stream: str, subject: str, seq: int) -> list[_Stored]:
        messages: list[_Stored] = []
        while True:
            batch, remaining = await self._retry(deadline, lambda: self._batch(stream, subject, seq))
            messages.extend(batch)
            if not batch or not remaining:
                return messages
            seq = batch[-1].seq + 1

    def _check_size(self, headers: dict[str, str], payload: bytes, what: str) -> None:
        limit = self._nc.max_payload
        size = _headers_size(headers) + len(payload)
        if size > limit:
            raise ValueError(
                f"{what}: its JSON ({len(payload)} bytes, {size} with headers) exceeds the NATS server's "
                f"max_payload of {limit} bytes; nothing was stored"
            )

    # -- events --------------------------------------------------------------------------------
    def event_subject(self, actor_id: str) -> str:
        """The subject holding ``actor_id``'s events; ValueError for an id the store refuses."""
        return self._events_prefix + actor_token(actor_id)

    async def save_event(self, event: Event) -> None:
        if not isinstance(event, Event):
            raise TypeError(f"save_event expects an Event, got {type(event).__name__}")
        subject = self.event_subject(event.actor_id)
        payload = encode_event(event)
        _, js = await self._connection()
        # Unique per call: it identifies this call's message when a publish's outcome is unknown.
        msg_id = uuid.uuid4().hex

        def headers(seq: int | str) -> dict[str, str]:
            return {
                Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value: str(seq),
                Header.MSG_ID.value: msg_id,
                VERSION_HEADER: str(event.version),
            }

        self._check_size(headers(_LONGEST_SEQUENCE), payload, "event")

        def ours(stored: _Stored | None) -> bool:
            return stored is not None and stored.msg_id == msg_id and stored.data == payload

        deadline = self._deadline()
        # A stale read (a lagging replica) costs a refused publish, never a wrong answer: the
        # publish carries the sequence it read, and a conflict is raised only after a fence.
        last = await self._retry(deadline, self._last(self.events_stream, subject))
        seq, latest = (last.seq, last.version) if last else (0, 0)
        # True while an attempt sent with expectation `seq` may have been stored without our knowing.
        in_doubt = False
        attempt = 0
        while True:
            if event.version <= latest:
                if self.replicas > 1 and not await self._fence(deadline, self.events_stream, subject, seq):
                    last = await self._retry(deadline, self._latest(self.events_stream, subject, True))
                    seq, latest = (last.seq, last.version) if last else (0, 0)
                    continue
                raise VersionConflictError(
                    actor_id=event.actor_id, attempted_version=event.version, current_version=latest
                )
            try:
                ack = await js.publish(subject, payload, timeout=self.request_timeout, headers=headers(seq))
            except _TRANSIENT as error:
                in_doubt = True
                attempt += 1
                await self._pause(deadline, attempt, error)
            except nats.js.errors.APIError as error:
                if error.err_code not in _LAST_SEQUENCE_CHANGED:
                    raise
            else:
                if not ack.duplicate:
                    return
                # The server already holds a message with this call's id: an earlier attempt landed.
                if ours(await self._retry(deadline, self._exact(self.events_stream, ack.seq))):
                    return
                raise RuntimeError(
                    f"JetStream called sequence {ack.seq} a duplicate of Nats-Msg-Id {msg_id}, "
                    "but that message is not this save's event"
                )
            if in_doubt:
                # An attempt expecting `seq` can only have landed as the subject's next message.
                # Asked of the leader: a lagging replica would hide a successor that is there.
                successor = await self._retry(deadline, self._following(self.events_stream, subject, seq + 1))
                if ours(successor):
                    return
                if successor is None:
                    continue  # it may still land: retry with the same expectation and id
                in_doubt = False  # someone else's message follows `seq`: ours can never land
            last = await self._retry(deadline, self._latest(self.events_stream, subject, True))
            seq, latest = (last.seq, last.version) if last else (0, 0)

    async def get_events(self, actor_id: str, from_version: int) -> list[Event]:
        if isinstance(from_version, bool) or not isinstance(from_version, int):
            raise TypeError(f"from_version: must be an int, got {type(from_version).__name__}")
        subject = self._read_subject(self._events_prefix, actor_id)
        if subject is None:
            return []
        deadline = self._deadline()
        last = await self._current_last(deadline, self.events_stream, subject)
        if last is None or last.version < from_version:
            return []
        start = await self._first_at_or_above(deadline, subject, from_version, last)
        stored = await self._read_through(deadline, subject, start, last)
        return [decode_event(message.data) for message in stored]

    async def _read_through(self, deadline: float, subject: str, start: int, last: _Stored) -> list[_Stored]:
        """The subject's messages from sequence ``start`` through ``last`` (the fenced latest).

        Batched direct gets may come from a replica that lags behind ``last``:
        such an answer stops short of it and is asked again.  Messages after
        ``last`` (saves since the fence) are left out, so the answer is the
        stream as of the fence.
        """
        attempt = 0
        while True:
            stored = await self._read_from(deadline, self.events_stream, subject, start)
            through = [message for message in stored if message.seq <= last.seq]
            if through and through[-1].seq == last.seq:
                return through
            attempt += 1
            await self._pause(deadline, attempt, TimeoutError(f"replicas lag behind sequence {last.seq} of {subject}"))

    async def _first_at_or_above(self, deadline: float, subject: str, from_version: int, last: _Stored) -> int:
        """The stream sequence of the subject's first event with version >= ``from_version``.

        Versions on a subject rise with stream sequence, so "the next event on
        the subject at or after sequence p has version >= from_version" is
        monotone in p: bisect p over 1..last.seq.
        """
        if from_version <= 1:  # every stored version is >= 1
            return 1
        low, high, best = 1, last.seq, last
        attempt = 0
        while low < high:
            middle = (low + high) // 2
            # Current reads: a lagging replica could miss messages at or below last.seq.
            found = await self._retry(deadline, self._following(self.events_stream, subject, middle))
            if found is None:
                # last.seq lies at or after every probe, so the answer came from a copy that has
                # not applied it yet (a deposed leader, before it learns so): ask again.
                attempt += 1
                await self._pause(deadline, attempt, TimeoutError(f"no copy of {subject} through sequence {last.seq}"))
                continue
            if found.version >= from_version:
                high, best = middle, found
            else:
                low = found.seq + 1
        return best.seq

    async def get_latest_version(self, actor_id: str) -> int:
        subject = self._read_subject(self._events_prefix, actor_id)
        if subject is None:
            return 0
        last = await self._current_last(self._deadline(), self.events_stream, subject)
        return 0 if last is None else last.version

    def _read_subject(self, prefix: str, actor_id: str) -> str | None:
        # An id the store refuses to save has nothing stored: reads answer "nothing".
        try:
            return prefix + actor_token(actor_id)
        except ValueError:
            return None

    # -- snapshots -----------------------------------------------------------------------------
    async def save_snapshot(self, snapshot: ActorSnapshot) -> None:
        """Keep ``snapshot`` if its version is above the kept one's (ties: the first saved wins)."""
        if not isinstance(snapshot, ActorSnapshot):
            raise TypeError(f"save_snapshot expects an ActorSnapshot, got {type(snapshot).__name__}")
        subject = self._snapshots_prefix + actor_token(snapshot.actor_id)
        payload = encode_snapshot(snapshot)
        _, js = await self._connection()

        def headers(seq: int | str) -> dict[str, str]:
            return {Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value: str(seq), VERSION_HEADER: str(snapshot.version)}

        self._check_size(headers(_LONGEST_SEQUENCE), payload, "snapshot")
        deadline = self._deadline()
        attempt = 0
        while True:
            # Re-reading also settles a timed-out attempt: if it landed, it is what we read.
            kept = await self._current_last(deadline, self.snapshots_stream, subject)
            if kept is not None and kept.version >= snapshot.version:
                return
            expected = kept.seq if kept else 0
            try:
                await js.publish(subject, payload, timeout=self.request_timeout, headers=headers(expected))
                return
            except _TRANSIENT as error:
                attempt += 1
                await self._pause(deadline, attempt, error)
            except nats.js.errors.APIError as error:
                if error.err_code not in _LAST_SEQUENCE_CHANGED:
                    raise

    async def get_latest_snapshot(self, actor_id: str) -> ActorSnapshot | None:
        subject = self._read_subject(self._snapshots_prefix, actor_id)
        if subject is None:
            return None
        kept = await self._current_last(self._deadline(), self.snapshots_stream, subject)
        return None if kept is None else ActorSnapshot.from_dict(json.loads(kept.data))


# -- the sync handle -------------------------------------------------------------------------


class SyncJetStreamStore:
    """A blocking handle: an :attr:`async_class` store on an event loop in a daemon thread.

    Calls may come from several threads at once; they run concurrently on the loop.
    """

    async_class: type[JetStreamStore] = JetStreamStore

    def __init__(self, url: str | None = None, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="aether-jetstream-loop", daemon=True)
        self._thread.start()
        self._closed = False
        try:
            self._store = self._run(self._make_store(url, options))
        except BaseException:
            self._stop_loop()
            raise

    async def _make_store(self, url: str | None, options: dict[str, Any]) -> JetStreamStore:
        # Created on the loop's own thread so that everything it makes belongs to that loop.
        return await self.async_class(url, **options).connect()

    @property
    def url(self) -> str:
        return self._store.url

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coroutine.close()
            raise RuntimeError("this SyncJetStreamStore handle is closed")
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

    def __enter__(self) -> SyncJetStreamStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# -- factories -------------------------------------------------------------------------------


def sync_store() -> SyncJetStreamStore:
    """Zero-argument factory: a new blocking handle (its own connection) to ``$AETHER_NATS_URL``."""
    return SyncJetStreamStore()


async def async_store() -> JetStreamStore:
    """Zero-argument factory: a new async handle, connected in the caller's running loop."""
    return await JetStreamStore().connect()
