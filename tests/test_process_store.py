"""Stores in other languages, driven over aether-store/1: a Python server and the Go seed itself."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from aether_conformance.schemas import validate
from tests.go_toolchain import go_binary, run_go
from tests.test_zoo import ROOT, certify

FACTORY = "aether_conformance.process_store:from_environment"
PYTHON_SERVER = f"{sys.executable} -m tests.process_server"
GO_SEED = ROOT / "reference_store" / "go_seed"


def _verdicts(report):
    return {r["id"]: r["outcome"] for r in report["requirements"]}


def test_a_conforming_process_store_is_certified(tmp_path):
    code, report, output = certify(FACTORY, tmp_path, env={"AETHER_STORE_COMMAND": PYTHON_SERVER})
    assert code == 0 and report["conformant"], output[-3000:]
    assert "snapshots" in report["capabilities"]  # announced in the greeting


@pytest.mark.parametrize(
    "flaw, requirement",
    # A crash is blamed on whichever requirement the 51st request was testing (None: any).
    [("off-by-one", "ES-SAVE-002"), ("python-text", "ES-ERR-002"), ("exit-after-50", None)],
)
def test_a_misbehaving_process_store_is_flagged(flaw, requirement, tmp_path):
    code, report, output = certify(FACTORY, tmp_path, "--", "-x",
                                   env={"AETHER_STORE_COMMAND": f"{PYTHON_SERVER} --flaw {flaw}"})
    failed = [r for r in report["requirements"] if r["outcome"] == "failed"]
    assert code == 1 and failed and requirement in (None, *(r["id"] for r in failed)), output[-3000:]
    if flaw == "exit-after-50":
        message = failed[0]["messages"][0]
        assert "exited with code 3" in message and "simulated crash" in message  # stderr tail included


def test_a_process_that_speaks_another_protocol_is_a_usage_error():
    completed = subprocess.run(
        [sys.executable, "-m", "aether_conformance.cli", "run", FACTORY], cwd=ROOT, capture_output=True, text=True,
        env={"AETHER_STORE_COMMAND": f"{PYTHON_SERVER} --flaw no-greeting", "PATH": "/usr/bin:/bin"}, timeout=120,
    )
    assert completed.returncode == 2 and "not protocol 'aether-store/1'" in completed.stderr


@pytest.fixture(scope="module")
def go_seed(tmp_path_factory):
    if go_binary() is None:
        pytest.skip("no Go toolchain: install the [go] extra")
    scratch = tmp_path_factory.mktemp("go")
    built = run_go(["build", "-o", str(scratch / "go_seed"), "."], GO_SEED, scratch)
    assert built.returncode == 0, built.stderr
    return scratch / "go_seed"


def test_the_go_seed_itself_is_conformant(go_seed, tmp_path):
    # The brief's rule, checked against the seed's own design in Go: it passes every MUST.
    code, report, output = certify(FACTORY, tmp_path, env={"AETHER_STORE_COMMAND": str(go_seed)})
    assert code == 0 and report["conformant"], output[-3000:]
    failed = [r["id"] for r in report["requirements"] if r["outcome"] == "failed"]
    assert not failed, failed


def test_the_go_seed_speaks_the_protocol_the_schema_describes(go_seed):
    requests = [
        {"id": 1, "method": "save_event", "params": {"event": {"id": "e1", "eventType": "T", "actorId": "a",
                                                               "version": 1, "data": None,
                                                               "timestamp": "2024-01-02T03:04:05.123456789Z"}}},
        {"id": 2, "method": "save_event", "params": {"event": {"id": "e2", "eventType": "T", "actorId": "a",
                                                               "version": 1, "data": {"k": [1, "x"]},
                                                               "timestamp": "2024-01-02T03:04:05Z"}}},
        {"id": 3, "method": "get_events", "params": {"actorId": "a", "fromVersion": 0}},
        {"id": 4, "method": "get_latest_version", "params": {"actorId": "nobody"}},
        {"id": 5, "method": "get_latest_snapshot", "params": {"actorId": "a"}},
        {"id": 6, "method": "save_snapshot", "params": {"snapshot": {"actorId": "a", "version": 1, "state": None,
                                                                     "timestamp": "2024-01-02T03:04:05Z"}}},
        {"id": 7, "method": "get_latest_snapshot", "params": {"actorId": "a"}},
    ]
    for request in requests:
        validate("process-protocol", request)
    # One request at a time: the seed serves requests concurrently, and this exchange is a script.
    with subprocess.Popen([str(go_seed)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as server:
        lines = [json.loads(server.stdout.readline())]
        for request in requests:
            server.stdin.write(json.dumps(request) + "\n")
            server.stdin.flush()
            lines.append(json.loads(server.stdout.readline()))
        server.stdin.close()
    for line in lines:
        validate("process-protocol", line)
    assert lines[0] == {"protocol": "aether-store/1", "snapshots": True}
    by_id = {line["id"]: line for line in lines[1:]}
    assert by_id[2]["error"]["conflict"]["message"] == 'version conflict: actor "a" has version 1, cannot save version 1'
    assert [e["id"] for e in by_id[3]["result"]] == ["e1"] and by_id[4]["result"] == 0
    assert by_id[5]["result"] is None and by_id[7]["result"]["version"] == 1
