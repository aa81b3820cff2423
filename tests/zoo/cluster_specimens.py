"""JetStream stores that are right on one server and wrong on a cluster.

* :class:`AnyReplicaJetStreamStore` is the reference store with its read
  fences taken out: it answers reads with whatever a direct get returns, and
  on a replicated stream any replica may answer, a lagging one included.
  After a save is acknowledged, a read served by a replica that has not
  applied it yet returns the older latest version: not linearizable.
* :class:`UnreplicatedJetStreamStore` ignores ``AETHER_NATS_REPLICAS`` and
  creates its streams with one replica, so one node's fault can lose its
  acknowledged saves or stop it; a fault run reports it.

Factories: ``tests.zoo.cluster_specimens:any_replica_store`` and
``tests.zoo.cluster_specimens:unreplicated_store`` (read ``AETHER_NATS_URL``).
"""

from __future__ import annotations

from typing import Any

from reference_store.jetstream import JetStreamStore, SyncJetStreamStore


class AnyReplicaJetStreamStore(JetStreamStore):
    async def _current_last(self, deadline: float, stream: str, subject: str) -> Any:
        # The bug: a direct get is taken as the truth, whichever replica answered it.
        return await self._retry(deadline, self._last(stream, subject))


class SyncAnyReplicaJetStreamStore(SyncJetStreamStore):
    async_class = AnyReplicaJetStreamStore


class SyncUnreplicatedJetStreamStore(SyncJetStreamStore):
    def __init__(self, url: str | None = None, **options: Any) -> None:
        super().__init__(url, **{**options, "replicas": 1})


def any_replica_store() -> SyncAnyReplicaJetStreamStore:
    return SyncAnyReplicaJetStreamStore()


def unreplicated_store() -> SyncUnreplicatedJetStreamStore:
    return SyncUnreplicatedJetStreamStore()
