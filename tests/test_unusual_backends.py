"""Correct stores on SQLite, JetStream and PostgreSQL, designed unlike the reference stores, are certified.

The stores are in ``tests/zoo/unusual_backends.py``.  Each is a control: the Go seed's semantics by
another route (a table per actor with TEXT versions, a KV head moved by revision CAS over an event
stream, typed columns that keep only microseconds), so a kit change that fails any of them has
turned an unusual design into a false positive.  One quick CLI run each.
"""

from __future__ import annotations

from tests.test_zoo import assert_verdict, certify


def test_a_table_per_actor_with_text_versions_is_conformant(tmp_path):
    store = "tests.zoo.unusual_backends:table_per_actor_sqlite"
    code, report, output = certify(store, tmp_path, "--capability", "multiprocess",
                                   env={"AETHER_SQLITE_PATH": str(tmp_path / "tables.sqlite3")})
    assert_verdict(store, None, code, report, output)


def test_a_kv_head_over_an_event_stream_is_conformant(aether_nats_server, tmp_path):
    store = "tests.zoo.unusual_backends:kv_head_jetstream"
    code, report, output = certify(store, tmp_path, "--capability", "multiprocess",
                                   env={"AETHER_NATS_URL": aether_nats_server.url})
    assert_verdict(store, None, code, report, output)


def test_typed_columns_that_drop_nanoseconds_are_conformant_missing_only_a_should(aether_postgres_server, tmp_path):
    store = "tests.zoo.unusual_backends:typed_columns_postgres"
    code, report, output = certify(store, tmp_path, "--capability", "multiprocess",
                                   env={"AETHER_POSTGRES_DSN": aether_postgres_server.dsn})
    assert_verdict(store, None, code, report, output, control_may_miss_should=True)
    outcomes = {r["id"]: r["outcome"] for r in report["requirements"]}
    assert outcomes["ES-READ-004"] == "failed", "timestamptz keeps microseconds only: ES-READ-004 must be reported"
