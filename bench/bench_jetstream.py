"""How fast the JetStream reference store saves and reads, against raw nats-py in the same run.

    python bench/bench_jetstream.py [--saves N] [--actors A] [--per-actor K] [--read-events R] [--repeat X]

Starts its own nats-server (127.0.0.1, temporary store) and measures:

* sequential saves through the async handle and through the sync handle;
* the raw baseline the store is held to: per save, ``json.dumps`` of the
  event's ``to_dict()``, the same direct get of the subject's last message
  and the same ``js.publish`` with the same headers
  (``Nats-Expected-Last-Subject-Sequence``, ``Nats-Msg-Id``,
  ``Aether-Version``) — the protocol the store speaks, minus the store's
  own work (input checks, retries, settling unknown outcomes);
* a raw publish-only baseline (the expected sequence taken from the previous
  ack, no read): what a writer that trusts its own last write would pay;
* saves to A actors at once from A asyncio tasks on one async handle, and
  the raw read+publish baseline run the same way;
* reading all R events of one actor, and its last tenth (the bisection
  path), against raw batched direct gets plus ``json.loads`` of the same
  messages.

Every figure is the best of ``--repeat`` rounds (the machine is shared);
ratios are store / raw, higher is better.  The target is async save >= 0.8x
raw read+publish; the exit status is 1 on a miss.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nats  # noqa: E402

from aether_conformance import Event  # noqa: E402
from aether_conformance.nats_server import NatsServer  # noqa: E402
from reference_store.jetstream import (  # noqa: E402
    VERSION_HEADER,
    JetStreamStore,
    SyncJetStreamStore,
    actor_token,
)

# The store may cost at most a fifth more than the raw protocol it speaks.
TARGET = 0.8
SUBJECTS = "aether.events."
STREAM = "AETHER_EVENTS"


def make_event(actor: str, version: int) -> Event:
    return Event(
        id=uuid.uuid4().hex,
        event_type="Deposited",
        actor_id=actor,
        version=version,
        data={"amount": version, "currency": "EUR", "note": "bench"},
        timestamp=datetime.now(timezone.utc),
    )


def batch_of(actor: str, count: int) -> list[Event]:
    return [make_event(actor, version) for version in range(1, count + 1)]


def fresh(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}"


class Raw:
    """nats-py doing by hand what one save of the store does on the wire."""

    def __init__(self, nc) -> None:
        self.nc = nc
        self.js = nc.jetstream()

    async def last(self, actor: str) -> tuple[int, int]:
        subject = SUBJECTS + actor_token(actor)
        msg = await self.nc.request(f"$JS.API.DIRECT.GET.{STREAM}.{subject}", b"", timeout=5)
        if msg.headers and msg.headers.get("Status") == "404":
            return 0, 0
        return int(msg.headers["Nats-Sequence"]), int(msg.headers[VERSION_HEADER])

    async def publish(self, event: Event, seq: int) -> int:
        payload = json.dumps(event.to_dict(), separators=(",", ":")).encode()
        headers = {
            "Nats-Expected-Last-Subject-Sequence": str(seq),
            "Nats-Msg-Id": uuid.uuid4().hex,
            VERSION_HEADER: str(event.version),
        }
        ack = await self.js.publish(SUBJECTS + actor_token(event.actor_id), payload, headers=headers, timeout=5)
        return ack.seq

    async def read_then_publish(self, event: Event) -> None:
        # The event's version is latest+1 by construction; the read is what a checked save costs.
        seq, _ = await self.last(event.actor_id)
        await self.publish(event, seq)

    async def read_all(self, actor: str) -> list:
        subject = SUBJECTS + actor_token(actor)
        inbox = self.nc.new_inbox()
        sub = await self.nc.subscribe(inbox)
        found, seq = [], 1
        try:
            while True:
                request = {"seq": seq, "next_by_subj": subject, "batch": 1024, "max_bytes": 8 << 20}
                await self.nc.publish(f"$JS.API.DIRECT.GET.{STREAM}", json.dumps(request).encode(), reply=inbox)
                while True:
                    msg = await sub.next_msg(timeout=5)
                    status = msg.headers.get("Status") if msg.headers else None
                    if status is None:
                        found.append(json.loads(msg.data))
                        seq = int(msg.headers["Nats-Sequence"]) + 1
                        continue
                    break
                if status != "204" or msg.headers.get("Nats-Num-Pending") == "0":
                    return found
        finally:
            await sub.unsubscribe()


def rate(count: int, seconds: float) -> float:
    return count / seconds


async def timed(coroutine) -> float:
    start = time.perf_counter()
    await coroutine
    return time.perf_counter() - start


async def bench(url: str, args: argparse.Namespace) -> dict[str, float]:
    store = await JetStreamStore(url).connect()
    raw = Raw(await nats.connect(url))
    sync = await asyncio.to_thread(SyncJetStreamStore, url)
    best: dict[str, float] = {}

    def keep(name: str, value: float) -> None:
        best[name] = max(best.get(name, 0.0), value)

    for _ in range(args.repeat):
        # -- sequential saves, one actor each ---------------------------------------------------
        # Events are built before the clock starts: building them is the caller's cost.
        events = batch_of(fresh("async"), args.saves)

        async def store_saves(events=events) -> None:
            for event in events:
                await store.save_event(event)

        keep("async store save", rate(args.saves, await timed(store_saves())))

        events = batch_of(fresh("sync"), args.saves)

        def sync_saves(events=events) -> None:
            for event in events:
                sync.save_event(event)

        keep("sync store save", rate(args.saves, await timed(asyncio.to_thread(sync_saves))))

        events = batch_of(fresh("raw"), args.saves)

        async def raw_saves(events=events) -> None:
            for event in events:
                await raw.read_then_publish(event)

        keep("raw read+publish", rate(args.saves, await timed(raw_saves())))

        events = batch_of(fresh("rawpub"), args.saves)

        async def raw_publishes(events=events) -> None:
            seq = 0
            for event in events:
                seq = await raw.publish(event, seq)

        keep("raw publish only", rate(args.saves, await timed(raw_publishes())))

        # -- many actors at once ---------------------------------------------------------------------
        batches = [batch_of(fresh("many"), args.per_actor) for _ in range(args.actors)]

        async def store_actor(events: list[Event]) -> None:
            for event in events:
                await store.save_event(event)

        total = args.actors * args.per_actor
        keep(
            f"async store save, {args.actors} actors",
            rate(total, await timed(asyncio.gather(*(store_actor(b) for b in batches)))),
        )
        batches = [batch_of(fresh("rawmany"), args.per_actor) for _ in range(args.actors)]

        async def raw_actor(events: list[Event]) -> None:
            for event in events:
                await raw.read_then_publish(event)

        keep(
            f"raw read+publish, {args.actors} actors",
            rate(total, await timed(asyncio.gather(*(raw_actor(b) for b in batches)))),
        )

    # -- reads ----------------------------------------------------------------------------------------
    reader = fresh("reads")
    for event in batch_of(reader, args.read_events):
        await store.save_event(event)
    tail_from = args.read_events - args.read_events // 10 + 1
    for _ in range(args.repeat):
        events = []

        async def read_all() -> None:
            events[:] = await store.get_events(reader, 0)

        keep(f"store get_events, {args.read_events} events (events/s)", rate(args.read_events, await timed(read_all())))
        assert [e.version for e in events] == list(range(1, args.read_events + 1))
        tail = args.read_events - tail_from + 1

        async def read_tail() -> None:
            events[:] = await store.get_events(reader, tail_from)

        keep(f"store get_events, last {tail} (events/s)", rate(tail, await timed(read_tail())))
        assert len(events) == tail
        raw_found = []

        async def raw_read() -> None:
            raw_found[:] = await raw.read_all(reader)

        keep(f"raw batched direct get, {args.read_events} (events/s)", rate(args.read_events, await timed(raw_read())))
        assert len(raw_found) == args.read_events

    await asyncio.to_thread(sync.close)
    await store.close()
    await raw.nc.close()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--saves", type=int, default=2000, help="sequential saves per measurement")
    parser.add_argument("--actors", type=int, default=100, help="actors saved to concurrently")
    parser.add_argument("--per-actor", type=int, default=20, help="saves per actor in the concurrent run")
    parser.add_argument("--read-events", type=int, default=1000, help="events of the actor that is read")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; each figure is the best round")
    args = parser.parse_args()

    with NatsServer() as server:
        best = asyncio.run(bench(server.url, args))

    width = max(map(len, best)) + 2
    print(f"nats-server JetStream, file storage, 127.0.0.1; best of {args.repeat} rounds")
    for name, value in best.items():
        print(f"  {name:<{width}} {value:>10,.0f} /s")
    fair = best["raw read+publish"]
    many = f"{args.actors} actors"
    print("ratios (store / raw):")
    print(f"  async save vs raw read+publish            {best['async store save'] / fair:.2f}x")
    print(f"  sync save  vs raw read+publish            {best['sync store save'] / fair:.2f}x")
    print(f"  async save vs raw publish only            {best['async store save'] / best['raw publish only']:.2f}x")
    print(
        f"  async save, {many} vs raw, {many}   "
        f"{best[f'async store save, {many}'] / best[f'raw read+publish, {many}']:.2f}x"
    )
    reads = f"store get_events, {args.read_events} events (events/s)"
    raw_reads = f"raw batched direct get, {args.read_events} (events/s)"
    print(f"  get_events all vs raw batched direct get  {best[reads] / best[raw_reads]:.2f}x")
    ratio = best["async store save"] / fair
    verdict = "PASS" if ratio >= TARGET else "MISS"
    print(f"target: async save >= {TARGET}x raw read+publish: {verdict} ({ratio:.2f}x)")
    if verdict == "MISS":
        sys.exit(1)


if __name__ == "__main__":
    main()
