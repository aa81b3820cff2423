"""A broken JetStream store: the seed's "version caching for performance" design.

Each handle remembers the latest version of every actor it has touched
(read from the server on first use, then bumped by its own saves) and checks
new saves against that memory instead of asking the server.  Its publishes
carry no ``Nats-Expected-Last-Subject-Sequence``, so the server appends
whatever arrives.

With one writer the cache is always right and every single-writer test
passes, reads included (they go to the server).  With a second handle — in
another thread or process — the cache goes stale: both handles accept the
same version, and the stream ends up with duplicate versions.

Factory: ``tests.zoo.naive_jetstream:sync_store`` (reads ``AETHER_NATS_URL``).
"""

from __future__ import annotations

from typing import Any

from aether_conformance import Event, VersionConflictError
from reference_store.jetstream import VERSION_HEADER, JetStreamStore, SyncJetStreamStore, encode_event


class NaiveJetStreamStore(JetStreamStore):
    def __init__(self, url: str | None = None, **options: Any) -> None:
        super().__init__(url, **options)
        self._known_latest: dict[str, int] = {}

    async def save_event(self, event: Event) -> None:
        subject = self.event_subject(event.actor_id)
        payload = encode_event(event)
        _, js = await self._connection()
        latest = self._known_latest.get(event.actor_id)
        if latest is None:
            latest = self._known_latest[event.actor_id] = await self.get_latest_version(event.actor_id)
        if event.version <= latest:
            raise VersionConflictError(actor_id=event.actor_id, attempted_version=event.version, current_version=latest)
        await js.publish(subject, payload, timeout=self.request_timeout, headers={VERSION_HEADER: str(event.version)})
        self._known_latest[event.actor_id] = event.version


class NaiveSyncJetStreamStore(SyncJetStreamStore):
    async_class = NaiveJetStreamStore


def sync_store() -> NaiveSyncJetStreamStore:
    return NaiveSyncJetStreamStore()
