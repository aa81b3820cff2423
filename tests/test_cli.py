"""The CLI and the pytest plugin, used the way a CI gate uses them: in fresh processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from aether_conformance.schemas import validate
from tests.test_zoo import ROOT, certify


def unreachable_store():
    raise ConnectionError("database refused the connection")


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def _verdicts(report: dict) -> dict[str, str]:
    return {r["id"]: r["outcome"] for r in report["requirements"]}


def test_the_reference_store_is_certified_with_every_report(tmp_path):
    junit, badge = tmp_path / "junit.xml", tmp_path / "badge.json"
    code, report, output = certify("reference_store.memory:shared_store", tmp_path,
                                   "--junitxml", str(junit), "--badge", str(badge))
    assert code == 0, output[-3000:]
    validate("report", report)
    assert report["conformant"] and report["store"] == "reference_store.memory:shared_store"
    assert _verdicts(report)["ES-CONC-002"] == "skipped"
    assert "multiprocess" in next(r for r in report["requirements"] if r["id"] == "ES-CONC-002")["reason"]
    assert "is **conformant**" in output and "more passed" in output  # the terminal shows what did not pass
    summary = (tmp_path / "artifacts" / "summary.md").read_text()
    assert "| ES-SAVE-002 Saves at or below the latest version conflict | MUST | ✅ passed" in summary
    suite = ElementTree.parse(junit).getroot().find("testsuite")
    cases = list(suite.iter("testcase"))
    assert len(cases) > 50 and all(case.get("name").startswith(("ES-", "SS-")) for case in cases)
    properties = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert properties["aether.spec_version"] == report["specVersion"] and properties["aether.verdict"] == "CONFORMANT"
    # Applicable MUSTs only: the in-memory store has snapshots but did not declare multiprocess.
    assert json.loads(badge.read_text())["message"] == f"conformant (20/20 MUST, spec {report['specVersion']})"


@pytest.mark.parametrize(
    "store, message",
    [("not-a-spec", "MODULE:ATTR"), ("no_such_module:f", "cannot import module"),
     ("tests.test_driver:needs_argument", "without arguments"),
     ("tests.test_cli:unreachable_store", "raised ConnectionError: database refused the connection")],
)
def test_an_unloadable_store_exits_2_with_one_clear_line(store, message, tmp_path):
    completed = _run("-m", "aether_conformance.cli", "run", store, "--artifacts", str(tmp_path))
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("aether-conformance: ")


def test_a_run_in_which_no_test_ran_exits_2(tmp_path):
    completed = _run("-m", "aether_conformance.cli", "run", "reference_store.memory:shared_store", "--artifacts", str(tmp_path),
                     "--", "-k", "no_test_has_this_name")
    assert completed.returncode == 2
    assert "no conformance test ran" in completed.stderr


def test_an_unknown_capability_is_a_usage_error(tmp_path):
    completed = _run("-m", "aether_conformance.cli", "run", "reference_store.memory:shared_store", "--artifacts", str(tmp_path),
                     "--capability", "teleport")
    assert completed.returncode == 2 and "invalid choice" in completed.stderr


@pytest.mark.parametrize("capability", ["snapshots", "asyncio"])
def test_a_detected_capability_cannot_be_declared(capability, tmp_path):
    completed = _run("-m", "pytest", "--pyargs", "aether_conformance.suite.test_read", "-p", "no:cacheprovider",
                     "--aether-store", "reference_store.memory:shared_store", "--aether-capability", capability,
                     cwd=tmp_path)
    assert completed.returncode == 4
    assert f"capability {capability!r} is detected from the store handle, not declared" in completed.stderr


def test_the_report_lists_asyncio_for_an_async_store_only(tmp_path):
    for store, kind in (("tests.zoo.controls:async_per_actor_locks", "async"), ("reference_store.memory:shared_store", "sync")):
        (tmp_path / kind).mkdir()
        _, report, output = certify(store, tmp_path / kind, "--", "-k", "same_task")
        assert ("asyncio" in report["capabilities"]) == (kind == "async"), output[-2000:]


@pytest.mark.parametrize("store", ["reference_store.memory:shared_store", "tests.zoo.specimens:check_then_write_race",
                                   "tests.zoo.specimens:exclusive_reads"])
def test_xdist_gives_the_same_verdicts(store, tmp_path):
    serial_dir, parallel_dir = tmp_path / "serial", tmp_path / "parallel"
    serial_dir.mkdir(), parallel_dir.mkdir()
    serial_code, serial, _ = certify(store, serial_dir)
    parallel_code, parallel, output = certify(store, parallel_dir, "--", "-n", "2")
    assert "bringing up nodes" in output  # xdist really ran the suite
    assert (serial_code, _verdicts(serial)) == (parallel_code, _verdicts(parallel))


def test_the_plugin_reads_the_store_from_ini_and_the_option_beats_it(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\naether_store = tests.zoo.specimens:exclusive_reads\n"
                                         "aether_profile = quick\n")
    from_ini = _run("-m", "pytest", "--pyargs", "aether_conformance.suite.test_read", "-p", "no:cacheprovider",
                    "--rootdir", str(tmp_path), "-c", str(tmp_path / "pytest.ini"), "-k", "inclusive", cwd=tmp_path)
    assert "store tests.zoo.specimens:exclusive_reads (from ini key aether_store in" in from_ini.stdout
    assert from_ini.returncode == 1 and "FAILED ES-READ-001 (MUST)" in from_ini.stdout
    from_option = _run("-m", "pytest", "--pyargs", "aether_conformance.suite.test_read", "-p", "no:cacheprovider",
                       "--rootdir", str(tmp_path), "-c", str(tmp_path / "pytest.ini"), "-k", "inclusive",
                       "--aether-store", "reference_store.memory:shared_store", cwd=tmp_path)
    assert "store reference_store.memory:shared_store (from --aether-store)" in from_option.stdout
    assert from_option.returncode == 0, from_option.stdout[-2000:]


def test_the_suite_without_a_store_is_a_usage_error(tmp_path):
    completed = _run("-m", "pytest", "--pyargs", "aether_conformance.suite.test_read", "-q", "-p", "no:cacheprovider",
                     "--rootdir", str(tmp_path), "-c", os.devnull, cwd=tmp_path)
    assert completed.returncode == 4 and "no store to certify" in completed.stderr + completed.stdout


def _pytest_script(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # The console script, not `python -m pytest`: only the plugin can make the current directory importable.
    return subprocess.run([str(Path(sys.executable).parent / "pytest"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_the_plugin_imports_a_store_package_from_the_current_directory(tmp_path):
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("from reference_store.memory import shared_store as make\n")
    completed = _pytest_script("--pyargs", "aether_conformance.suite.test_read", "-p", "no:cacheprovider", "-q",
                               "-c", os.devnull, "--aether-store", "mypkg:make", "--aether-profile", "quick", cwd=tmp_path)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    # Only part of the suite was collected: the verdict says so instead of certifying.
    assert "INCOMPLETE" in completed.stdout and "MUST requirement(s) were not checked" in completed.stdout


def test_a_store_the_plugin_cannot_import_is_one_usage_error(tmp_path):
    completed = _pytest_script("--pyargs", "aether_conformance.suite", "-p", "no:cacheprovider", "-q",
                               "-c", os.devnull, "--aether-store", "nopkg:make", cwd=tmp_path)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 4, output[-2000:]
    assert output.count("cannot import module 'nopkg'") == 1 and "importable from the directory pytest runs in" in output
