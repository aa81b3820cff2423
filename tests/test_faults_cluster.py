"""Certification on a 3-node NATS JetStream cluster under kill, pause and partition (ES-FAULT-001).

Each run starts its own cluster through the CLI (``--nats-cluster 3``) and
injects all three faults on a seeded schedule.  The reference store must be
conformant, sync and async; the stores that are right on one server and
wrong on a cluster must be flagged.  Fault runs are few (each takes about a
minute here) and every wait in them is bounded.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("nats", reason="the [jetstream] extra is not installed")

from tests.test_zoo import ROOT, certify  # noqa: E402

ALL_FAULTS = ("--nats-cluster", "3", "--faults", "kill,pause,partition")


def _fault_entry(report: dict) -> dict:
    return next(r for r in report["requirements"] if r["id"] == "ES-FAULT-001")


def test_the_reference_store_is_conformant_on_a_cluster_under_every_fault(tmp_path):
    code, report, output = certify("reference_store.jetstream:sync_store", tmp_path, *ALL_FAULTS,
                                   "--capability", "multiprocess")
    assert "started a 3-node nats-server cluster at nats://127.0.0.1:" in output
    failed = [(r["id"], r["messages"][:1]) for r in report["requirements"] if r["outcome"] == "failed"]
    skipped = [r["id"] for r in report["requirements"] if r["outcome"] == "skipped"]
    assert code == 0 and report["conformant"] and not failed and not skipped, f"{failed} {skipped}\n{output[-3000:]}"
    assert report["statistics"]["faults_injected"] == 3
    assert "Faults: no anomaly found in 3 faults" in output and "nats-server, version v2." in output
    for kind in ("kill", "pause", "partition"):
        assert f"  {kind} on n" in output, output[-2000:]


def test_the_async_reference_store_survives_every_fault(tmp_path):
    fault_report = tmp_path / "faults.json"
    code, report, output = certify("reference_store.jetstream:async_store", tmp_path, *ALL_FAULTS,
                                   "--fault-report", str(fault_report), "--", "-k", "test_faults")
    assert _fault_entry(report)["outcome"] == "passed", output[-3000:]
    (run,) = json.loads(fault_report.read_text())
    assert sorted(f["kind"] for f in run["faults"]) == ["kill", "partition", "pause"]
    assert all(f["end"] is not None and f["recovery_seconds"] >= 0 for f in run["faults"])
    assert run["environment"]["nodes"] == 3 and run["environment"]["sync"]
    assert run["verdict"] == "no anomaly found in 3 faults"
    unknown = run["unknown_outcomes"]
    assert unknown["count"] == len(unknown["calls"])
    assert unknown["saves_landed_once"] + unknown["saves_never_landed"] + unknown["reads"] == unknown["count"]


def test_a_store_reading_from_any_replica_is_flagged(tmp_path):
    code, report, output = certify("tests.zoo.cluster_specimens:any_replica_store", tmp_path, *ALL_FAULTS,
                                   "--", "-k", "test_faults")
    entry = _fault_entry(report)
    assert entry["outcome"] == "failed" and code == 1, f"not caught: {entry}\n{output[-2000:]}"
    assert entry["messages"][0].startswith("ES-FAULT-001: ")
    # A lagging replica shows as a stale read or as a latest version going backwards, by the schedule.
    assert any(reading in entry["messages"][0] for reading in ("a read of the latest version", "went backwards")), \
        entry["messages"][0][:2000]


def test_the_naive_store_is_flagged_on_a_cluster(tmp_path):
    code, report, output = certify("tests.zoo.naive_jetstream:sync_store", tmp_path, *ALL_FAULTS,
                                   "--", "-k", "test_faults")
    entry = _fault_entry(report)
    assert entry["outcome"] == "failed" and code == 1, f"not caught: {entry}\n{output[-2000:]}"
    assert entry["messages"][0].startswith("ES-FAULT-001: ")


def test_a_store_that_creates_an_unreplicated_stream_is_reported(tmp_path):
    code, report, output = certify("tests.zoo.cluster_specimens:unreplicated_store", tmp_path, *ALL_FAULTS,
                                   "--", "-k", "test_faults")
    entry = _fault_entry(report)
    assert entry["outcome"] == "failed" and code == 1
    assert "stream AETHER_EVENTS has 1 replica(s) on a 3-node cluster" in entry["messages"][0]


@pytest.mark.parametrize("arguments, message", [
    (["--nats-cluster", "0"], "--nats-cluster: must be a number of nodes from 2 to 5"),
    (["--nats-cluster", "3", "--nats-server"], "--nats-server and --nats-cluster are exclusive"),
    (["--fault-seed", "3"], "--fault-seed and --fault-report need --faults"),
    (["--faults", "kill,,pause"], "--faults: must be a comma-separated list"),
    (["--faults", "kill", "--postgres-server", "--nats-cluster", "3"], "faults hit one backend"),
])
def test_bad_cluster_and_fault_options_are_usage_errors(arguments, message):
    completed = subprocess.run(
        [sys.executable, "-m", "aether_conformance.cli", "run", "reference_store.memory:shared_store", *arguments],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 2 and message in completed.stderr, completed.stderr
