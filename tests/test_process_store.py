"""Stores in other languages, driven over aether-store/1: a Python server, the Go seed, broken children.

Every misbehaviour is certified the way a user would run it — the real CLI in a
fresh process — and judged by its exit code and its message.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aether_conformance.process_store import StoreProcess, StoreProcessError, from_environment, _quote
from aether_conformance.schemas import validate
from tests.go_toolchain import go_binary, run_go
from tests.children.escapes8d import BROKEN as ESCAPES8D_BROKEN
from tests.children.escapes8d import CONTROLS as ESCAPES8D_CONTROLS
from tests.test_zoo import ROOT, assert_verdict, certify

FACTORY = "aether_conformance.process_store:from_environment"
PYTHON_SERVER = f"{sys.executable} -m tests.process_server"
MISBEHAVE = f"{sys.executable} -m tests.children.misbehave"
GO_SEED = ROOT / "reference_store" / "go_seed"


def _verdicts(report):
    return {r["id"]: r["outcome"] for r in report["requirements"]}


def _failure_messages(report) -> list[str]:
    return [m for r in report["requirements"] if r["outcome"] == "failed" for m in r["messages"]]


def _run_cli(tmp_path: Path, *extra: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aether_conformance.cli", "run", FACTORY, "--profile", "quick",
                           "--artifacts", str(tmp_path / "artifacts"), *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, **env})


def _pids(pid_file: Path) -> list[int]:
    return [int(line) for line in pid_file.read_text().split()]


def _is_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()[0]
    except FileNotFoundError:
        return True
    return state == b"Z"  # ended; waiting for an init that may never reap it


def test_a_conforming_process_store_is_certified(tmp_path):
    code, report, output = certify(FACTORY, tmp_path, env={"AETHER_STORE_COMMAND": PYTHON_SERVER})
    assert code == 0 and report["conformant"], output[-3000:]
    assert "snapshots" in report["capabilities"]  # announced in the greeting
    assert report["implementation"] == {"protocol": "aether-store/1", "command": PYTHON_SERVER,
                                        "name": "tests.process_server", "version": "1"}


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


def test_a_failure_shows_the_json_lines_exchanged(tmp_path):
    code, report, output = certify(FACTORY, tmp_path, "-v", "--", "-x",
                                   env={"AETHER_STORE_COMMAND": f"{PYTHON_SERVER} --flaw off-by-one"})
    assert code == 1, output[-3000:]
    transcript = output[output.index("aether-store/1 transcript"):]
    sent = [line for line in transcript.splitlines() if line.startswith('→ {"id": ')]
    answered = [line for line in transcript.splitlines() if line.startswith('← {"id": ')]
    assert sent and answered, transcript[:3000]
    assert '"method": "save_event"' in transcript and '"result": null' in transcript


def test_a_process_that_speaks_another_protocol_is_a_usage_error():
    completed = subprocess.run(
        [sys.executable, "-m", "aether_conformance.cli", "run", FACTORY], cwd=ROOT, capture_output=True, text=True,
        env={"AETHER_STORE_COMMAND": f"{PYTHON_SERVER} --flaw no-greeting", "PATH": "/usr/bin:/bin"}, timeout=120,
    )
    assert completed.returncode == 2 and "not protocol 'aether-store/1'" in completed.stderr


def test_a_child_that_never_greets_is_a_usage_error_naming_the_deadline(tmp_path):
    pid_file = tmp_path / "pids"
    completed = _run_cli(tmp_path, env={"AETHER_STORE_COMMAND": f"{MISBEHAVE} silent --pid-file {pid_file}",
                              "AETHER_STORE_GREETING_TIMEOUT": "1", "AETHER_STORE_SHUTDOWN_GRACE": "0.5"})
    lines = completed.stderr.strip().splitlines()
    assert completed.returncode == 2 and len(lines) == 1, completed.stderr
    assert "did not greet within 1s" in lines[0] and "AETHER_STORE_GREETING_TIMEOUT" in lines[0]
    assert all(_is_gone(pid) for pid in _pids(pid_file))  # it ignored SIGTERM: SIGKILL ended it


def test_a_child_that_exits_before_greeting_is_a_usage_error_with_its_code_and_stderr(tmp_path):
    completed = _run_cli(tmp_path, env={"AETHER_STORE_COMMAND": f"{MISBEHAVE} exit-early"})
    lines = completed.stderr.strip().splitlines()
    assert completed.returncode == 2 and len(lines) == 1, completed.stderr
    assert "exited with code 7 before greeting" in lines[0]
    assert "fatal: cannot open database /nonexistent/store.db" in lines[0]


# mode, the rule its line breaks, what of the line the message quotes, extra environment
BROKEN_LINES = [
    ("invalid-utf8", "utf-8", '"note": "caf\\xe9', {}),
    ("long-line", "line-size", '"result": "xxxxxxxx', {"AETHER_STORE_MAX_LINE_BYTES": str(1 << 20)}),
    ("endless-line", "line-size", '"result": "xxxxxxxx', {"AETHER_STORE_MAX_LINE_BYTES": str(1 << 20)}),
    ("deep-nesting", "nesting", '"result": [[[[', {}),
    ("big-int", "int64", '"result": 9223372036854775808', {}),
    # Beyond Python's own int conversion limit, whose error message speaks Python.
    ("huge-int", "int64", "an integer of 5000 digits, beyond int64", {}),
    ("bool-id", "id", '{"id": true, "result": null}', {}),
    ("result-and-error", "result-or-error", '"result": 1, "error": {"kind": "internal"', {}),
    ("conflict-without-conflict", "error-schema", '"error": {"kind": "version_conflict"}', {}),
]


@pytest.mark.parametrize("mode, rule, quoted, env", BROKEN_LINES, ids=[case[0] for case in BROKEN_LINES])
def test_a_protocol_violation_breaks_the_store_at_once_with_the_rule_and_the_line(mode, rule, quoted, env, tmp_path):
    code, report, output = certify(FACTORY, tmp_path, "--", "--maxfail=3",
                                   env={"AETHER_STORE_COMMAND": f"{MISBEHAVE} {mode}", **env})
    messages = _failure_messages(report)
    assert code == 1 and len(messages) >= 2, output[-3000:]
    # The first failure may be the call that met the bad line; every later one repeats the verdict at once.
    for message in messages[-2:]:
        assert f'broke aether-store/1 rule "{rule}"' in message and quoted in message, message
        assert "did not return within" not in message  # failed at once, not by timeout
    assert "Traceback" not in output.split("FAILURES")[0]  # no reader thread died noisily


HOSTILE6 = f"{sys.executable} -m tests.children.hostile6"
# The sixth review's children (tests/children/hostile6.py): what the failure message must say.
HOSTILE6_FAILURES = {
    "duplicate-id": 'broke aether-store/1 rule "id"',
    "unknown-id": 'broke aether-store/1 rule "id": id 987654321 answers no request in flight',
    "swap-ids": "ES-",  # every id is one in flight: only the answers' content gives it away
    "partial-then-silence": "did not return within",
    "close-stdout": "closed its stdout",
    "stdout-to-grandchild": "exited with code 0",
}


@pytest.mark.parametrize("mode", sorted(HOSTILE6_FAILURES))
def test_a_child_misbehaving_mid_run_fails_with_a_clear_message(mode, tmp_path):
    code, report, output = certify(FACTORY, tmp_path, "--", "--maxfail=3",
                                   env={"AETHER_STORE_COMMAND": f"{HOSTILE6} {mode}"})
    messages = _failure_messages(report)
    assert code == 1 and not report["conformant"] and messages, output[-3000:]
    assert any(HOSTILE6_FAILURES[mode] in message for message in messages), messages[:3]


ESCAPES8D = f"{sys.executable} -m tests.children.escapes8d"


@pytest.mark.parametrize("mode", sorted(ESCAPES8D_BROKEN))
def test_a_child_the_eighth_review_wrote_is_flagged_for_its_requirement(mode, tmp_path):
    # Stores in other languages broken on one path of the wire (tests/children/escapes8d.py).
    code, report, output = certify(FACTORY, tmp_path, env={"AETHER_STORE_COMMAND": f"{ESCAPES8D} {mode}"})
    assert_verdict(mode, ESCAPES8D_BROKEN[mode], code, report, output)


@pytest.mark.parametrize("mode", ESCAPES8D_CONTROLS)
def test_a_correct_child_of_the_eighth_review_is_certified(mode, tmp_path):
    code, report, output = certify(FACTORY, tmp_path, env={"AETHER_STORE_COMMAND": f"{ESCAPES8D} {mode}"})
    assert_verdict(mode, None, code, report, output)


def test_a_child_writing_raw_unicode_line_separators_in_json_strings_is_certified(tmp_path):
    code, report, output = certify(FACTORY, tmp_path, env={"AETHER_STORE_COMMAND": f"{HOSTILE6} raw-separators"})
    assert code == 0 and report["conformant"], output[-3000:]


def test_a_log_line_on_stderr_that_is_not_utf8_is_kept_escaped_and_breaks_nothing():
    """Stderr is for people: a child logging Latin-1 is a correct store, not a broken one."""
    process = StoreProcess([sys.executable, "-m", "tests.children.misbehave", "invalid-utf8-stderr"])
    try:
        for actor in ("a", "b", "c"):
            assert process.call("get_latest_version", {"actorId": actor}) == 0
        deadline = time.monotonic() + 60  # the stderr reader is a thread of its own
        while "caf\\xe9 not found" not in process._stderr_note():
            assert time.monotonic() < deadline, process._stderr_note()
            time.sleep(0.05)
    finally:
        process.close()


def test_every_call_after_a_violation_fails_at_once_with_the_same_message():
    process = StoreProcess([sys.executable, "-m", "tests.children.misbehave", "bool-id"])
    try:
        with pytest.raises(StoreProcessError) as first:
            process.call("get_latest_version", {"actorId": "a"})
        with pytest.raises(StoreProcessError) as later:
            process.call("get_latest_version", {"actorId": "b"})
    finally:
        process.close()
    assert 'rule "id"' in str(first.value) and str(later.value) == str(first.value)


def test_shutdown_does_not_hang_on_a_child_that_floods_stderr_and_stops_reading(tmp_path):
    pid_file = tmp_path / "pids"
    completed = _run_cli(tmp_path, "--timeout", "5", "--", "-x",
                         env={"AETHER_STORE_COMMAND": f"{MISBEHAVE} flood-stderr --pid-file {pid_file}",
                              "AETHER_STORE_SHUTDOWN_GRACE": "0.5"})
    assert completed.returncode == 1, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "did not return within 5s" in completed.stdout
    assert all(_is_gone(pid) for pid in _pids(pid_file))


def test_nothing_the_child_spawned_outlives_the_run(tmp_path):
    pid_file = tmp_path / "pids"
    code, report, output = certify(FACTORY, tmp_path, env={"AETHER_STORE_COMMAND": f"{MISBEHAVE} grandchild --pid-file {pid_file}",
                                                           "AETHER_STORE_SHUTDOWN_GRACE": "0.5"})
    assert code == 0 and report["conformant"], output[-3000:]  # it serves correctly: a whole run
    child, grandchild = _pids(pid_file)
    assert _is_gone(child) and _is_gone(grandchild)


def test_a_child_that_exits_is_seen_to_exit_though_an_orphan_holds_its_stdout(tmp_path):
    # No end of file ever comes on stdout: what the child left behind keeps it open.
    pid_file = tmp_path / "pids"
    completed = _run_cli(tmp_path, "--timeout", "30", "--", "--maxfail=2",
                         env={"AETHER_STORE_COMMAND": f"{MISBEHAVE} orphan-holds-stdout --pid-file {pid_file}",
                              "AETHER_STORE_SHUTDOWN_GRACE": "0.5"})
    report = json.loads((tmp_path / "artifacts" / "report.json").read_text())
    messages = _failure_messages(report)
    assert completed.returncode == 1 and messages, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert all("exited with code 9" in message for message in messages), messages
    assert all(_is_gone(pid) for pid in _pids(pid_file))


def test_multiprocess_starts_a_copy_per_writer_process_which_must_share_the_data(tmp_path):
    shared = f"{PYTHON_SERVER} --sqlite {tmp_path / 'shared.sqlite3'}"
    code, report, output = certify(FACTORY, tmp_path, "--capability", "multiprocess",
                                   "--", "-k", "test_concurrent_writer_processes", env={"AETHER_STORE_COMMAND": shared})
    assert _verdicts(report)["ES-CONC-002"] == "passed", output[-3000:]


def test_multiprocess_declared_for_a_store_in_child_memory_is_caught(tmp_path):
    # Each writer process starts its own copy, with its own memory: their writes never meet.
    code, report, output = certify(FACTORY, tmp_path, "--capability", "multiprocess",
                                   "--", "-k", "test_concurrent_writer_processes",
                                   env={"AETHER_STORE_COMMAND": PYTHON_SERVER})
    assert code == 1 and _verdicts(report)["ES-CONC-002"] == "failed", output[-3000:]


def test_the_handle_reports_what_the_child_said_it_is(monkeypatch):
    monkeypatch.setenv("AETHER_STORE_COMMAND", PYTHON_SERVER)
    handle = from_environment()
    try:
        assert handle.aether_implementation == {"protocol": "aether-store/1", "command": PYTHON_SERVER,
                                                "name": "tests.process_server", "version": "1"}
        handle.get_latest_version("nobody")
        assert '← {"id": 1, "result": 0}' in handle.transcript()
    finally:
        handle.close()


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
    assert report["implementation"]["name"] == "go_seed" and report["implementation"]["command"] == str(go_seed)


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
    assert lines[0]["protocol"] == "aether-store/1" and lines[0]["snapshots"] is True
    by_id = {line["id"]: line for line in lines[1:]}
    assert by_id[2]["error"]["conflict"]["message"] == 'version conflict: actor "a" has version 1, cannot save version 1'
    assert [e["id"] for e in by_id[3]["result"]] == ["e1"] and by_id[4]["result"] == 0
    assert by_id[5]["result"] is None and by_id[7]["result"]["version"] == 1


def test_a_quoted_line_shows_control_characters_and_bidi_overrides_escaped():
    # A line quoted in a failure reaches a terminal or a CI log: an escape sequence in it would
    # recolour or clear the screen, a bidi override would reorder what a reader sees.
    line = '{"id": 1, "result": "\x1b[2J\x07\u202eevil\u2066\x85"}\n'.encode()
    assert _quote(line) == '{"id": 1, "result": "\\x1b[2J\\x07\\u202eevil\\u2066\\x85"}'
    assert _quote(b"caf\xe9\tok") == "caf\\xe9\\x09ok"
