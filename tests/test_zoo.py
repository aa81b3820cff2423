"""The suite against the zoo: every broken store is flagged for the requirement it breaks.

Each specimen is certified the way a user would do it — the real CLI in a
fresh process — and the JSON report must show its requirement failed, with
a message that starts with that requirement's ID.  The controls must pass.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aether_conformance.requirements import REQUIREMENTS, Level
from aether_conformance.schemas import validate
from tests.zoo.specimens import SPECIMENS

ROOT = Path(__file__).resolve().parent.parent


def certify(store: str, tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[int, dict, str]:
    report_path = tmp_path / "report.json"
    command = [sys.executable, "-m", "aether_conformance.cli", "run", store, "--profile", "quick",
               "--json-report", str(report_path), "--artifacts", str(tmp_path / "artifacts"), *extra]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                               env={**os.environ, **(env or {})})
    output = completed.stdout + completed.stderr
    assert report_path.exists(), f"no report written; output:\n{output[-3000:]}"
    return completed.returncode, json.loads(report_path.read_text()), output


def _options(name: str, tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    if name == "nonatomic_sqlite":
        return ["--capability", "multiprocess"], {"AETHER_SQLITE_PATH": str(tmp_path / "naive.sqlite3")}
    if name == "hangs_on_unknown_actor":
        return ["--timeout", "1"], {}
    return [], {}


@pytest.mark.parametrize("name", sorted(SPECIMENS))
def test_specimen_is_flagged_for_its_requirement(name, tmp_path):
    broken = SPECIMENS[name]
    extra, env = _options(name, tmp_path)
    code, report, output = certify(f"tests.zoo.specimens:{name}", tmp_path, *extra, env=env)
    validate("report", report)
    outcomes = {r["id"]: r for r in report["requirements"]}
    if broken is None:
        failed = [r["id"] for r in report["requirements"] if r["outcome"] == "failed"]
        assert code == 0 and report["conformant"] and not failed, f"control store failed {failed}:\n{output[-3000:]}"
        return
    entry = outcomes[broken]
    assert entry["outcome"] == "failed", f"{name} breaks {broken} but the suite reported {entry}:\n{output[-3000:]}"
    # Each message starts with the requirement IDs it is about; this one must be among them.
    assert entry["messages"] and all(broken in m.split(": ")[0].split(", ") for m in entry["messages"]), entry["messages"]
    must = next(r for r in REQUIREMENTS if r.id == broken).level is Level.MUST
    assert code == (1 if must else 0) and report["conformant"] is not must
    assert f"| {broken} " in output and "❌ FAILED" in output  # the Markdown table names it


def test_every_requirement_has_a_specimen_that_breaks_it():
    broken = set(SPECIMENS.values()) - {None}
    assert not {r.id for r in REQUIREMENTS} - broken, "requirements no zoo specimen breaks"
