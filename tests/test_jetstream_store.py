"""The JetStream reference store (reference_store/jetstream.py) against real nats-server processes.

One server serves the module; every test uses fresh actor ids, so tests do
not see each other's events.  Multi-process tests spawn writers that each
open their own handle, as separate clients of one database would.
"""

from __future__ import annotations

import asyncio
import importlib
import multiprocessing
import os
import re
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timezone

import pytest

nats = pytest.importorskip("nats", reason="the [jetstream] extra is not installed")

from aether_conformance import ActorSnapshot, Event, Timestamp, VersionConflictError  # noqa: E402
from aether_conformance.nats_server import NatsServer  # noqa: E402
from reference_store import jetstream  # noqa: E402
from reference_store.jetstream import (  # noqa: E402
    MAX_ACTOR_ID_LENGTH,
    JetStreamStore,
    SyncJetStreamStore,
    actor_token,
)

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
SPAWN = multiprocessing.get_context("spawn")
REFERENCE = "reference_store.jetstream:sync_store"
NAIVE = "tests.zoo.naive_jetstream:sync_store"


@pytest.fixture(scope="module")
def server():
    with NatsServer() as running:
        yield running


@pytest.fixture
def store(server):
    handle = SyncJetStreamStore(server.url)
    yield handle
    handle.close()


@pytest.fixture
def other(server):
    handle = SyncJetStreamStore(server.url)
    yield handle
    handle.close()


def fresh(label: str = "actor") -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}"


AMOUNT = object()  # default data: {"amount": version}


def event(actor: str, version: int, data=AMOUNT, *, event_id: str | None = None, **fields) -> Event:
    return Event(
        id=event_id or f"{actor}-{version}-{uuid.uuid4().hex[:6]}",
        event_type=fields.pop("event_type", "Deposited"),
        actor_id=actor,
        version=version,
        data={"amount": version} if data is AMOUNT else data,
        timestamp=fields.pop("timestamp", T0),
        **fields,
    )


def versions(handle, actor: str, from_version: int = 0) -> list[int]:
    return [e.version for e in handle.get_events(actor, from_version)]


async def _stream_messages(url: str, stream: str) -> int:
    nc = await nats.connect(url)
    try:
        return (await nc.jetstream().stream_info(stream)).state.messages
    finally:
        await nc.close()


def stream_messages(url: str, stream: str = "AETHER_EVENTS") -> int:
    return asyncio.run(_stream_messages(url, stream))


# --- saving and conflicts -------------------------------------------------------------------


def test_saves_read_back_equal_and_conflicts_carry_the_latest_version(store):
    actor = fresh()
    first, second = event(actor, 1), event(actor, 2)
    store.save_event(first)
    store.save_event(second)
    for attempted in (2, 1, 0, -5):
        with pytest.raises(VersionConflictError) as caught:
            store.save_event(event(actor, attempted))
        error = caught.value
        assert (error.actor_id, error.attempted_version, error.current_version) == (actor, attempted, 2)
        assert str(error) == f'version conflict: actor "{actor}" has version 2, cannot save version {attempted}'
    assert store.get_events(actor, 0) == [first, second]
    assert store.get_latest_version(actor) == 2


def test_a_new_actor_is_at_zero_and_refuses_version_zero(store):
    actor = fresh()
    assert store.get_latest_version(actor) == 0
    assert store.get_events(actor, 0) == []
    with pytest.raises(VersionConflictError) as caught:
        store.save_event(event(actor, 0))
    assert caught.value.current_version == 0
    assert store.get_events(actor, 0) == []


def test_gaps_are_allowed_and_the_conflict_check_uses_the_highest(store):
    actor = fresh()
    store.save_event(event(actor, 1))
    store.save_event(event(actor, 5))
    assert store.get_latest_version(actor) == 5
    with pytest.raises(VersionConflictError) as caught:
        store.save_event(event(actor, 3))
    assert caught.value.current_version == 5
    store.save_event(event(actor, 2**63 - 1))
    assert versions(store, actor) == [1, 5, 2**63 - 1]


def test_reads_are_inclusive_for_every_start_with_other_actors_interleaved(store):
    # Interleaving puts other actors' messages between this actor's, so the
    # bisection over stream sequences has gaps to step over.
    actor, noise = fresh(), fresh("noise")
    saved = [1, 2, 3, 7, 8, 20, 21, 22, 40, 41, 95]
    for index, version in enumerate(saved):
        store.save_event(event(actor, version))
        for extra in range(index % 3):
            store.save_event(event(noise, index * 10 + extra + 1))
    for from_version in range(-2, max(saved) + 3):
        assert versions(store, actor, from_version) == [v for v in saved if v >= from_version], from_version


def test_reads_span_several_direct_get_batches(store, monkeypatch):
    actor = fresh()
    for version in range(1, 26):
        store.save_event(event(actor, version))
    monkeypatch.setattr(jetstream, "BATCH_MESSAGES", 4)
    assert versions(store, actor) == list(range(1, 26))
    assert versions(store, actor, 10) == list(range(10, 26))


def test_events_round_trip_nanoseconds_offsets_null_data_and_unicode(store):
    actor = fresh("ünï.cødé ✓")
    saved = [
        event(actor, 1, None, timestamp=Timestamp.parse("2024-05-01T12:00:00.123456789+05:30"), command_id="cmd-ü"),
        event(actor, 2, {}, timestamp=Timestamp.parse("1999-12-31T23:59:59.000000001-08:00")),
        event(
            actor, 3,
            {"owner": "Zoë 🚀", "nested": {"list": [1, 2.5, None, True, "x"], "empty": {}}, "big": 2**62},
            timestamp=Timestamp.parse("2024-05-01T12:00:00Z"),
        ),
    ]
    for item in saved:
        store.save_event(item)
    read = store.get_events(actor, 0)
    assert read == saved
    assert read[0].data is None and read[1].data == {}
    assert [e.timestamp.nanosecond for e in read] == [789, 1, 0]
    assert [e.timestamp.utcoffset() for e in read] == [s.timestamp.utcoffset() for s in saved]


@pytest.mark.parametrize(
    "ids",
    [
        ["a.b", "a", "a.*", "a.>", "*", ">", "a b", " a", "a\tb"],
        ["Case", "case", "CASE"],
        ["caf\u00e9", "cafe\u0301"],  # NFC and NFD spell the same word differently
        ["suffix", "suffix ", "suffix\n"],
        # With the 8-character run prefix these are exactly MAX_ACTOR_ID_LENGTH long.
        ["x" * (MAX_ACTOR_ID_LENGTH - 8), "\U0001f600" * (MAX_ACTOR_ID_LENGTH - 8)],
    ],
    ids=["subject-syntax", "case", "normalisation", "suffix", "longest"],
)
def test_actor_ids_are_exact_strings_and_never_leak_into_each_other(store, ids):
    run = uuid.uuid4().hex[:8]
    actors = [run + actor for actor in ids]
    assert all(len(actor) <= MAX_ACTOR_ID_LENGTH for actor in actors)
    for position, actor in enumerate(actors):
        for version in range(1, position + 2):
            store.save_event(event(actor, version, {"owner": actor}))
    for position, actor in enumerate(actors):
        read = store.get_events(actor, 0)
        assert [e.version for e in read] == list(range(1, position + 2)), actor
        assert {e.actor_id for e in read} == {actor}
        assert store.get_latest_version(actor) == position + 1
    for actor in actors:
        assert re.fullmatch(r"[A-Za-z0-9_-]+", actor_token(actor)), actor


# --- refused input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actor", "message"),
    [
        ("", r"actor_id: must not be empty"),
        ("z" * (MAX_ACTOR_ID_LENGTH + 1), rf"actor_id: must be at most {MAX_ACTOR_ID_LENGTH} characters"),
        # The model refuses it as the event is built, at the event's id (made from the actor id) first.
        ("bad\ud800id", r"(actor_id|Event\.id): .*lone surrogate"),
    ],
    ids=["empty", "too-long", "lone-surrogate"],
)
def test_refused_actor_ids_raise_value_error_and_store_nothing(server, store, actor, message):
    before = stream_messages(server.url)
    with pytest.raises(ValueError, match=message):
        store.save_event(event(actor, 1))
    with pytest.raises(ValueError, match=message):
        store.save_snapshot(ActorSnapshot(actor_id=actor, version=1, state={}, timestamp=T0))
    assert stream_messages(server.url) == before
    assert store.get_events(actor, 0) == []
    assert store.get_latest_version(actor) == 0
    assert store.get_latest_snapshot(actor) is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"x": float("nan")}, r"Event\.data\['x'\]: NaN is not valid JSON"),
        ({"x": [1, float("inf")]}, r"Event\.data\['x'\]\[1\]: \+Inf is not valid JSON"),
        ({"tags": {1, 2}}, r"Event\.data\['tags'\]: a set is not JSON"),
        ({"pair": (1, 2)}, r"Event\.data\['pair'\]: a tuple is not JSON"),
        ({1: "int key"}, r"Event\.data: key 1 is a int; JSON object keys are strings"),
        ({"when": T0}, r"Event\.data\['when'\]: a datetime is not JSON"),
        ({"s": "lone \udc00"}, r"Event\.data\['s'\]: .*lone surrogate"),
    ],
    ids=["nan", "inf", "set", "tuple", "int-key", "datetime", "surrogate"],
)
def test_non_json_data_raises_value_error_naming_data_and_stores_nothing(server, store, data, message):
    actor = fresh()
    before = stream_messages(server.url)
    with pytest.raises(ValueError, match=message):
        store.save_event(event(actor, 1, data))
    assert stream_messages(server.url) == before
    assert store.get_latest_version(actor) == 0


def test_circular_data_is_refused(store):
    loop: dict = {}
    loop["self"] = loop
    with pytest.raises(ValueError, match=r"Event\.data\['self'\]: contains itself"):
        store.save_event(event(fresh(), 1, loop))


def test_a_lone_surrogate_in_the_event_id_is_refused_naming_the_field(store):
    with pytest.raises(ValueError, match=r"Event\.id: .*lone surrogate"):
        store.save_event(event(fresh(), 1, event_id="id-\ud800"))


def test_payloads_over_max_payload_are_refused_before_sending_and_the_handle_keeps_working():
    limit = 4096
    with NatsServer(max_payload=limit) as small:
        handle = SyncJetStreamStore(small.url)
        try:
            actor = fresh()

            def padded(version: int, pad: int) -> Event:
                return event(actor, version, {"pad": "p" * pad}, event_id="e")

            with pytest.raises(ValueError, match=rf"max_payload of {limit} bytes; nothing was stored"):
                handle.save_event(padded(1, limit))
            assert stream_messages(small.url) == 0
            # Bisect the largest padding the store accepts.  Near the limit the headers
            # decide: were they not counted, the server would drop the connection
            # ("Maximum Payload Violation") instead of the store raising ValueError.
            handle.save_event(padded(1, 0))
            fits, too_big, saved = 0, limit, 1
            while too_big - fits > 1:
                middle = (fits + too_big) // 2
                try:
                    handle.save_event(padded(saved + 1, middle))
                except ValueError as error:
                    assert "max_payload" in str(error)
                    too_big = middle
                else:
                    fits, saved = middle, saved + 1
            assert limit - 200 < len(jetstream.encode_event(padded(saved, fits))) < limit
            with pytest.raises(ValueError, match="max_payload"):
                handle.save_event(padded(saved + 1, fits + 1))
            handle.save_event(padded(saved + 1, 10))
            assert versions(handle, actor) == list(range(1, saved + 2))
            assert stream_messages(small.url) == saved + 1
            with pytest.raises(ValueError, match=r"snapshot: .*max_payload"):
                handle.save_snapshot(ActorSnapshot(actor_id=actor, version=1, state={"pad": "p" * limit}, timestamp=T0))
            assert handle.get_latest_snapshot(actor) is None
        finally:
            handle.close()


# --- snapshots ----------------------------------------------------------------------------------


def test_snapshots_highest_version_wins_ties_keep_the_first_and_events_are_untouched(store):
    actor, neighbour = fresh(), fresh()
    store.save_event(event(actor, 1))
    assert store.get_latest_snapshot(actor) is None
    store.save_snapshot(ActorSnapshot(actor_id=actor, version=5, state={"v": 5}, timestamp=T0))
    store.save_snapshot(ActorSnapshot(actor_id=actor, version=3, state={"v": 3}, timestamp=T0))
    first_seven = ActorSnapshot(
        actor_id=actor, version=7, state=None, timestamp=Timestamp.parse("2024-05-01T12:00:00.000000007+01:00")
    )
    store.save_snapshot(first_seven)
    store.save_snapshot(ActorSnapshot(actor_id=actor, version=7, state={"second": True}, timestamp=T0))
    kept = store.get_latest_snapshot(actor)
    assert kept == first_seven and kept.state is None and kept.timestamp.nanosecond == 7
    assert store.get_latest_snapshot(neighbour) is None
    assert store.get_latest_version(actor) == 1
    assert versions(store, actor) == [1]


# --- handles --------------------------------------------------------------------------------------


def test_two_handles_see_each_others_saves_and_conflicts(store, other):
    actor = fresh()
    store.save_event(event(actor, 1))
    assert other.get_latest_version(actor) == 1
    with pytest.raises(VersionConflictError) as caught:
        other.save_event(event(actor, 1))
    assert caught.value.current_version == 1
    other.save_event(event(actor, 2))
    assert versions(store, actor) == [1, 2]


def test_factories_read_the_url_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("AETHER_NATS_URL", server.url)
    actor = fresh()
    handle = jetstream.sync_store()
    try:
        assert handle.url == server.url
        handle.save_event(event(actor, 1))
    finally:
        handle.close()

    async def through_async_factory() -> list[int]:
        async_handle = await jetstream.async_store()
        async with async_handle:
            await async_handle.save_event(event(actor, 2))
            return [e.version for e in await async_handle.get_events(actor, 0)]

    assert asyncio.run(through_async_factory()) == [1, 2]


def test_a_closed_handle_refuses_calls(server):
    handle = SyncJetStreamStore(server.url)
    handle.close()
    handle.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        handle.get_latest_version("anyone")


def test_async_handle_connects_lazily_in_the_running_loop_and_serialises_racing_tasks(server):
    actor, writers, target = fresh(), 5, 40

    async def writer(handle: JetStreamStore, label: str) -> list[str]:
        acked = []
        while True:
            latest = await handle.get_latest_version(actor)
            if latest >= target:
                return acked
            item = event(actor, latest + 1, {"writer": label})
            try:
                await handle.save_event(item)
            except VersionConflictError:
                continue
            acked.append(item.id)

    async def main() -> tuple[list[list[str]], list[Event]]:
        handles = [JetStreamStore(server.url) for _ in range(2)]  # created before any loop work: lazy
        try:
            results = await asyncio.gather(*(writer(handles[i % 2], f"w{i}") for i in range(writers)))
            return results, await handles[0].get_events(actor, 0)
        finally:
            for handle in handles:
                await handle.close()

    results, stored = asyncio.run(main())
    assert_linear_history(stored, [item for acked in results for item in acked])


def test_concurrent_first_use_creates_the_streams_once(server):
    namespace = f"race{uuid.uuid4().hex[:8]}"

    async def main() -> int:
        handles = [JetStreamStore(server.url, namespace=namespace) for _ in range(6)]
        try:
            await asyncio.gather(*(handle.connect() for handle in handles))
            await handles[0].save_event(event("shared", 1))
            return await handles[-1].get_latest_version("shared")
        finally:
            for handle in handles:
                await handle.close()

    assert asyncio.run(main()) == 1
    assert stream_messages(server.url, f"{namespace.upper()}_EVENTS") == 1


def test_a_foreign_stream_of_the_same_name_is_reported(server):
    namespace = f"clash{uuid.uuid4().hex[:8]}"

    async def main() -> None:
        nc = await nats.connect(server.url)
        try:
            await nc.jetstream().add_stream(name=f"{namespace.upper()}_EVENTS", subjects=[f"elsewhere.{namespace}"])
        finally:
            await nc.close()
        await JetStreamStore(server.url, namespace=namespace).connect()

    with pytest.raises(RuntimeError, match=f"stream {namespace.upper()}_EVENTS exists .* use another namespace"):
        asyncio.run(main())


# --- publishes whose outcome is unknown ----------------------------------------------------------


class FaultyNetwork:
    """The handle's real JetStream context, with chosen publishes' requests or acks lost.

    The server is real and stores (or never sees) each message for real; only
    what the store learns about it is taken away, as a dropped connection would.
    """

    def __init__(self, js, plan: list) -> None:
        self._js, self._plan = js, plan
        self.publishes = 0

    def __getattr__(self, name: str):
        return getattr(self._js, name)

    async def publish(self, *args, **kwargs):
        self.publishes += 1
        step = self._plan.pop(0) if self._plan else "deliver"
        if callable(step):  # something else happens while our request is lost
            await step()
            raise nats.errors.TimeoutError
        if step == "lose-request":
            raise nats.errors.TimeoutError
        ack = await self._js.publish(*args, **kwargs)
        if step == "lose-ack":
            raise nats.errors.TimeoutError
        return ack


def run_with_faults(url: str, plan: list, body):
    async def main():
        # Every fault is raised at once by FaultyNetwork: the timeouts only bound a real request, so they
        # are generous (a real publish slower than a short timeout on a busy machine would add a publish).
        handle = await JetStreamStore(url, request_timeout=10.0, op_timeout=60.0).connect()
        network = handle._js = FaultyNetwork(handle._js, plan)
        try:
            return await body(handle), network.publishes
        finally:
            await handle.close()

    return asyncio.run(main())


def test_a_lost_ack_is_settled_by_reading_back_and_reported_as_success(server, store):
    actor = fresh()
    store.save_event(event(actor, 1))
    mine = event(actor, 2)
    _, publishes = run_with_faults(server.url, ["lose-ack"], lambda handle: handle.save_event(mine))
    assert publishes == 1  # the read-back found it: no second publish
    assert store.get_events(actor, 0)[1:] == [mine]


def test_a_lost_request_is_retried_and_stored_once(server, store):
    actor = fresh()
    mine = event(actor, 1)
    _, publishes = run_with_faults(server.url, ["lose-request", "lose-request"], lambda handle: handle.save_event(mine))
    assert publishes == 3
    assert store.get_events(actor, 0) == [mine]


def test_a_lost_request_overtaken_by_another_writer_is_a_conflict(server, store, other):
    actor = fresh()
    store.save_event(event(actor, 1))
    theirs = event(actor, 2, {"writer": "other"})

    async def other_writer_wins() -> None:
        await asyncio.to_thread(other.save_event, theirs)

    mine = event(actor, 2, {"writer": "me"})
    with pytest.raises(VersionConflictError) as caught:
        run_with_faults(server.url, [other_writer_wins], lambda handle: handle.save_event(mine))
    assert caught.value.current_version == 2
    assert store.get_events(actor, 0)[1:] == [theirs]


def test_a_lost_ack_then_a_later_writer_still_counts_as_ours(server, store, other):
    # Our message landed (ack lost), then another writer appended after it before we
    # looked: the read-back must find ours right after the sequence we expected.
    actor = fresh()
    mine, later = event(actor, 1), event(actor, 2)

    async def body(handle):
        network = handle._js

        async def publish_then_other_writes(*args, **kwargs):
            network.publishes += 1
            await network._js.publish(*args, **kwargs)
            await asyncio.to_thread(other.save_event, later)
            raise nats.errors.TimeoutError

        network.publish = publish_then_other_writes
        await handle.save_event(mine)

    _, publishes = run_with_faults(server.url, [], body)
    assert publishes == 1
    assert store.get_events(actor, 0) == [mine, later]


# --- concurrency across processes -----------------------------------------------------------------


def assert_linear_history(stored: list[Event], acked_ids: list[str]) -> None:
    """Versions 1..N, each once; every acknowledged id exactly once; N == number of acks."""
    ids = Counter(e.id for e in stored)
    assert not [i for i, n in ids.items() if n > 1], "an event id is stored twice"
    assert [e.version for e in stored] == list(range(1, len(stored) + 1)), "versions are not 1..N, each once"
    assert Counter(acked_ids) == Counter({i: 1 for i in ids}), "acknowledged ids differ from stored ids"


def history_violations(stored: list[Event], acked_ids: list[str]) -> list[str]:
    try:
        assert_linear_history(stored, acked_ids)
    except AssertionError as error:
        return [str(error)]
    return []


def _load(spec: str):
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def _round_writer(spec: str, url: str, actor: str, label: str, rounds: int, barrier, results) -> None:
    """Spawned: per round, read the latest, wait for every writer, then save latest+1 once."""
    os.environ["AETHER_NATS_URL"] = url
    handle = _load(spec)()
    acked = []
    try:
        for round_no in range(rounds):
            latest = handle.get_latest_version(actor)
            barrier.wait(timeout=60)
            item = event(actor, latest + 1, {"writer": label, "round": round_no}, event_id=f"{label}-r{round_no}")
            try:
                handle.save_event(item)
            except VersionConflictError:
                continue
            acked.append(item.id)
    finally:
        results.put((label, acked))
        handle.close()


def run_round_writers(spec: str, url: str, writers: int, rounds: int) -> tuple[str, list[str]]:
    actor = fresh("contended")
    barrier, results = SPAWN.Barrier(writers), SPAWN.Queue()
    processes = [
        SPAWN.Process(target=_round_writer, args=(spec, url, actor, f"w{i}", rounds, barrier, results))
        for i in range(writers)
    ]
    for process in processes:
        process.start()
    acked = []
    for _ in processes:
        acked.extend(results.get(timeout=120)[1])
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    return actor, acked


def test_writers_in_separate_processes_get_exactly_one_winner_per_version(server, store):
    actor, acked = run_round_writers(REFERENCE, server.url, writers=3, rounds=15)
    stored = store.get_events(actor, 0)
    assert_linear_history(stored, acked)
    assert len(stored) == 15  # every round has exactly one winner: all writers read the same latest


def test_the_naive_version_cache_is_caught_by_the_same_run(server, store):
    actor, acked = run_round_writers(NAIVE, server.url, writers=3, rounds=15)
    stored = store.get_events(actor, 0)
    problems = history_violations(stored, acked)
    assert problems, "the naive store's stale per-handle cache went unnoticed"
    assert len(stored) > len({e.version for e in stored}), "expected a version saved more than once"


def test_the_naive_store_passes_a_single_writer_but_not_a_second_handle(server):
    naive = importlib.import_module("tests.zoo.naive_jetstream")
    first, second = naive.NaiveSyncJetStreamStore(server.url), naive.NaiveSyncJetStreamStore(server.url)
    try:
        actor = fresh()
        first.save_event(event(actor, 1))
        first.save_event(event(actor, 2))
        with pytest.raises(VersionConflictError):
            first.save_event(event(actor, 2))
        assert versions(first, actor) == [1, 2]
        second.save_event(event(actor, 3))  # its first use reads 2 from the server: correct
        assert first.get_latest_version(actor) == 3  # reads go to the server...
        first.save_event(event(actor, 3))  # ...but the check uses the cache, still at 2
        assert versions(second, actor) == [1, 2, 3, 3]
    finally:
        first.close()
        second.close()


# --- a crash of the server while writers run -----------------------------------------------------


def _crash_writer(url: str, actor: str, label: str, stop, results) -> None:
    """Spawned: read-latest → save(latest+1) until told to stop; any error but a conflict is an unknown outcome."""
    acked, unknown, errors = [], [], Counter()
    deadline = time.monotonic() + 90  # a lost parent must not leave writers behind
    handle = None
    try:
        # A slow spawn may first meet the server while it is down: connect until it is back.
        while handle is None and not stop.is_set() and time.monotonic() < deadline:
            try:
                handle = SyncJetStreamStore(url, request_timeout=1.0, op_timeout=20.0)
            except Exception as error:
                errors[f"connect {type(error).__name__}"] += 1
                time.sleep(0.1)
        while handle is not None and not stop.is_set() and time.monotonic() < deadline:
            try:
                latest = handle.get_latest_version(actor)
            except Exception as error:  # the server is away: try again
                errors[type(error).__name__] += 1
                time.sleep(0.1)
                continue
            item = event(actor, latest + 1, {"writer": label}, event_id=f"{label}-{uuid.uuid4().hex[:10]}")
            try:
                handle.save_event(item)
            except VersionConflictError:
                continue
            except Exception as error:  # unknown outcome: the event may or may not be stored
                unknown.append(item.id)
                errors[type(error).__name__] += 1
                time.sleep(0.1)
                continue
            acked.append((item.id, item.version))
    finally:
        results.put((label, acked, unknown, dict(errors)))
        if handle is not None:
            handle.close()


def test_acknowledged_saves_survive_a_sigkill_of_the_server_exactly_once(tmp_path):
    writers = 3
    with NatsServer(tmp_path / "store") as crashing:
        actor = fresh("crash")
        observer = SyncJetStreamStore(crashing.url, request_timeout=1.0, op_timeout=30.0)
        stop, results = SPAWN.Event(), SPAWN.Queue()
        processes = [
            SPAWN.Process(target=_crash_writer, args=(crashing.url, actor, f"w{i}", stop, results))
            for i in range(writers)
        ]
        for process in processes:
            process.start()

        def wait_for_progress(beyond: int, by: int) -> int:
            deadline = time.monotonic() + 60
            while (latest := observer.get_latest_version(actor)) < beyond + by:
                assert time.monotonic() < deadline, f"writers stuck at version {latest}"
                time.sleep(0.02)
            return latest

        try:
            latest = wait_for_progress(0, 15)
            for _ in range(2):  # two crashes: more chances to catch a publish in flight
                crashing.kill()
                # Down for longer than a request timeout: publishes in flight time out (their
                # outcome unknown to the store), and the client's buffered ones reach the
                # restarted server after their caller gave up on them.
                time.sleep(1.5)
                crashing.restart()
                latest = wait_for_progress(latest, 15)  # the writers resumed
            stop.set()
            outcomes = [results.get(timeout=120) for _ in processes]
        finally:
            stop.set()
            for process in processes:
                process.join(timeout=30)
        stored = observer.get_events(actor, 0)
        observer.close()

    acked = [pair for _, pairs, _, _ in outcomes for pair in pairs]
    ids = Counter(e.id for e in stored)
    assert not [i for i, n in ids.items() if n > 1], "an event id is stored twice"
    assert [e.version for e in stored] == list(range(1, len(stored) + 1))
    by_id = {e.id: e.version for e in stored}
    lost = [(i, v) for i, v in acked if by_id.get(i) != v]
    assert not lost, f"acknowledged saves lost or moved by the crash: {lost[:5]}"
    in_doubt = {i for _, _, unknown, _ in outcomes for i in unknown}
    assert set(by_id) <= {i for i, _ in acked} | in_doubt, "a stored event was neither acknowledged nor in doubt"


# --- on a 3-node cluster (aether_nats_cluster: real nodes, proxied routes) -----------------------

CLUSTER_SETTLE = 90.0  # seconds: bounds elections and reconnects on a loaded machine, never a speed target


@pytest.fixture
def healthy_cluster(aether_nats_cluster):
    yield aether_nats_cluster
    for node in aether_nats_cluster.nodes:
        if node.paused:
            aether_nats_cluster.resume(node)
        elif not node.running:
            aether_nats_cluster.restart(node)
    aether_nats_cluster.heal()
    aether_nats_cluster.wait_healthy(CLUSTER_SETTLE)


def cluster_namespace() -> str:
    return f"c{uuid.uuid4().hex[:10]}"


def test_on_a_cluster_the_streams_get_the_replicas_asked_for_from_the_environment(healthy_cluster, monkeypatch):
    monkeypatch.setenv("AETHER_NATS_URL", healthy_cluster.url)
    monkeypatch.setenv("AETHER_NATS_REPLICAS", "3")
    namespace = cluster_namespace()
    with SyncJetStreamStore(namespace=namespace) as handle:
        assert handle._store.servers == healthy_cluster.urls
        handle.save_event(event("a", 1))
        assert handle.get_latest_version("a") == 1
    streams = healthy_cluster.streams()
    for kind in ("EVENTS", "SNAPSHOTS"):
        stream = streams[f"{namespace.upper()}_{kind}"]
        assert stream["configured"] == 3 and stream["replicas"] >= 3, stream  # more while a peer moves


@pytest.mark.parametrize("text", ["three", "0", "6", "-1"])
def test_a_bad_replica_count_is_refused_naming_the_variable(monkeypatch, text):
    monkeypatch.setenv("AETHER_NATS_REPLICAS", text)
    with pytest.raises(ValueError, match="AETHER_NATS_REPLICAS: must be a whole number|replicas: must be a whole number"):
        JetStreamStore("nats://127.0.0.1:1")


def test_asking_for_replicas_a_single_server_cannot_give_fails_loudly(server):
    with pytest.raises(Exception, match="(?i)replicas"):
        SyncJetStreamStore(server.url, replicas=3, namespace=cluster_namespace())


def test_a_stream_kept_with_fewer_replicas_than_asked_is_an_error(healthy_cluster):
    async def main():
        nc = await nats.connect(healthy_cluster.urls)
        try:
            js = nc.jetstream(timeout=20)
            return await js.add_stream(name=f"LONE{uuid.uuid4().hex[:6].upper()}", subjects=[f"lone.{uuid.uuid4().hex}"])
        finally:
            await nc.close()

    info = asyncio.run(main())
    with pytest.raises(RuntimeError, match=r"asked for 3 replicas but has 1 configured and 1 placed"):
        jetstream._check_replicas(info.config.name, 3, info)


def test_racing_saves_through_every_node_get_one_winner_per_version(healthy_cluster):
    namespace, actor = cluster_namespace(), fresh("race")
    handles = [SyncJetStreamStore(url, replicas=3, namespace=namespace) for url in healthy_cluster.urls * 2]
    acked: list[tuple[str, int]] = []
    failures: list[BaseException] = []

    def write(handle, label):
        for n in range(15):
            latest = handle.get_latest_version(actor)
            saved = event(actor, latest + 1, event_id=f"{label}-{n}")
            try:
                handle.save_event(saved)
                acked.append((saved.id, saved.version))
            except VersionConflictError as conflict:
                if conflict.current_version < saved.version:
                    failures.append(AssertionError(f"conflict below the attempt: {conflict}"))
            except BaseException as error:  # a raw 10164 would land here
                failures.append(error)

    threads = [threading.Thread(target=write, args=(h, f"w{i}")) for i, h in enumerate(handles)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    try:
        assert not failures, failures[:3]
        stored = handles[0].get_events(actor, 0)
        assert [e.version for e in stored] == list(range(1, len(stored) + 1))
        assert sorted((e.id, e.version) for e in stored) == sorted(acked)
    finally:
        for handle in handles:
            handle.close()


def test_a_cut_off_replica_is_never_read_stale(healthy_cluster):
    """A partitioned follower still answers direct gets from its own, stale, copy."""
    from tests.zoo.cluster_specimens import SyncAnyReplicaJetStreamStore

    namespace, actor = cluster_namespace(), fresh("fenced")
    majority = SyncJetStreamStore(healthy_cluster.url, replicas=3, namespace=namespace)
    majority.save_event(event(actor, 1))
    leader = healthy_cluster.stream_leader(f"{namespace.upper()}_EVENTS")
    follower = next(node for node in healthy_cluster.nodes if node.name != leader)
    others = [node.url for node in healthy_cluster.nodes if node is not follower]
    # Handles pinned to nodes: the writer to the majority, the readers to the follower.
    writer = SyncJetStreamStore(",".join(others), replicas=3, namespace=namespace)
    fenced = SyncJetStreamStore(follower.url, replicas=3, namespace=namespace, op_timeout=4.0, request_timeout=1.0)
    naive = SyncAnyReplicaJetStreamStore(follower.url, replicas=3, namespace=namespace)
    try:
        deadline = time.monotonic() + CLUSTER_SETTLE
        while naive.get_latest_version(actor) != 1:  # the follower has applied version 1
            assert time.monotonic() < deadline
            time.sleep(0.1)
        healthy_cluster.partition(follower)
        writer.save_event(event(actor, 2))  # acknowledged by the leader and the third node
        assert naive.get_latest_version(actor) == 1  # the bug: a stale answer, after an acknowledged 2
        with pytest.raises(TimeoutError):
            fenced.get_latest_version(actor)  # no answer rather than a wrong one
        healthy_cluster.heal(follower)
        healthy_cluster.wait_healthy(CLUSTER_SETTLE)
        # Healed, the follower catches up; how long that takes depends on the machine, so the
        # reads after it get a handle whose timeout only bounds a hang.
        recovered = SyncJetStreamStore(follower.url, replicas=3, namespace=namespace, op_timeout=60.0)
        try:
            assert recovered.get_latest_version(actor) == 2
            assert [e.version for e in recovered.get_events(actor, 0)] == [1, 2]
        finally:
            recovered.close()
    finally:
        for handle in (majority, writer, fenced, naive):
            handle.close()


def test_saves_in_flight_while_the_stream_leader_is_killed_land_exactly_once(healthy_cluster):
    namespace, actor = cluster_namespace(), fresh("failover")
    handle = SyncJetStreamStore(healthy_cluster.url, replicas=3, namespace=namespace, op_timeout=60.0)
    stream = f"{namespace.upper()}_EVENTS"
    try:
        handle.save_event(event(actor, 1))
        leader = healthy_cluster.stream_leader(stream)
        done = threading.Event()
        versions: list[int] = []

        def write():
            for version in range(2, 41):
                handle.save_event(event(actor, version, event_id=f"{actor}-{version}"))
                versions.append(version)
            done.set()

        writer = threading.Thread(target=write)
        writer.start()
        deadline = time.monotonic() + CLUSTER_SETTLE
        while len(versions) < 5:
            assert time.monotonic() < deadline and writer.is_alive()
            time.sleep(0.01)
        healthy_cluster.kill(leader)  # saves are in flight on the leader's connection
        writer.join(300)
        assert done.is_set(), "a save did not come back after the leader died"
        healthy_cluster.restart(leader)
        stored = handle.get_events(actor, 0)
        # Every save returned: each is stored once, at its version, whatever the kill cut short.
        assert [e.version for e in stored] == list(range(1, 41))
        assert len({e.id for e in stored}) == 40
    finally:
        handle.close()
