"""Fixtures shared by the kit's own tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory):
    """A real nats-server with JetStream on 127.0.0.1 and a free port, for the whole session (per xdist worker)."""
    from aether_conformance.nats_server import NatsServer

    with NatsServer(store_dir=tmp_path_factory.mktemp("jetstream")) as server:
        yield server
