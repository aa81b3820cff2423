"""The real backends pass the suite end to end; their unsafe twins fail it on every run.

The durable stores are certified through the CLI with ``--capability
multiprocess`` (writers in separate processes share the file or the server).
The non-atomic SQLite store and the naive JetStream store (a per-handle
version cache and no expected-sequence header) must be caught by ES-CONC-002
on each of 20 consecutive runs: detection that works only sometimes is a defect.
"""

from __future__ import annotations

import pytest

from tests.test_zoo import certify

CONSECUTIVE_RUNS = 20


def _assert_conformant(code, report, output):
    failed = [(r["id"], r["messages"][:1]) for r in report["requirements"] if r["outcome"] == "failed"]
    assert code == 0 and report["conformant"] and not failed, f"{failed}\n{output[-3000:]}"
    # ES-FAULT-001 needs injected faults: it is certified on a cluster in tests/test_faults_cluster.py.
    skipped = [r["id"] for r in report["requirements"] if r["outcome"] == "skipped" and r["id"] != "ES-FAULT-001"]
    assert not skipped, f"requirements not exercised: {skipped}"


def test_sqlite_store_is_conformant_across_processes(tmp_path):
    env = {"AETHER_SQLITE_PATH": str(tmp_path / "events.sqlite3")}
    _assert_conformant(*certify("reference_store.sqlite:shared_store", tmp_path, "--capability", "multiprocess", env=env))


@pytest.mark.parametrize("factory", ["sync_store", "async_store"])
def test_jetstream_store_is_conformant_across_processes(factory, aether_nats_server, tmp_path):
    env = {"AETHER_NATS_URL": aether_nats_server.url}
    _assert_conformant(*certify(f"reference_store.jetstream:{factory}", tmp_path, "--capability", "multiprocess", env=env))


def test_the_cli_starts_a_nats_server_when_asked(tmp_path):
    code, report, output = certify("reference_store.jetstream:sync_store", tmp_path, "--nats-server")
    assert "started nats-server at nats://127.0.0.1:" in output
    assert code == 0 and report["conformant"], output[-3000:]


def _flagged_by_process_race(store, tmp_path, env):
    code, report, output = certify(store, tmp_path, "--capability", "multiprocess",
                                   "--", "-k", "test_concurrent_writer_processes", env=env)
    entry = next(r for r in report["requirements"] if r["id"] == "ES-CONC-002")
    assert entry["outcome"] == "failed" and code == 1, f"not caught: {entry}\n{output[-2000:]}"
    assert entry["messages"][0].startswith("ES-CONC-002: ")


@pytest.mark.parametrize("run", range(CONSECUTIVE_RUNS))
def test_nonatomic_sqlite_is_caught_on_every_run(run, tmp_path):
    _flagged_by_process_race("tests.zoo.specimens:nonatomic_sqlite", tmp_path,
                             {"AETHER_SQLITE_PATH": str(tmp_path / "naive.sqlite3")})


@pytest.mark.parametrize("run", range(CONSECUTIVE_RUNS))
def test_naive_jetstream_is_caught_on_every_run(run, aether_nats_server, tmp_path):
    _flagged_by_process_race("tests.zoo.naive_jetstream:sync_store", tmp_path, {"AETHER_NATS_URL": aether_nats_server.url})
