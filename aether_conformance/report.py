"""Per-requirement verdicts and the reports made from them: JSON, Markdown, badge.

A requirement fails when any test citing it fails (a test that checks several
requirements names the broken one first in its message); it passes when at
least one test of it passed and none failed; otherwise it is skipped, with the
reason.  A store is conformant when every MUST requirement passed, except
those whose capability the store does not have.
"""

from __future__ import annotations

import json
import platform
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from .requirements import REQUIREMENTS, Level, Requirement

__all__ = [
    "CaseOutcome",
    "RequirementOutcome",
    "summarise",
    "build_report",
    "write_json_report",
    "markdown_summary",
    "badge",
]

_STARTED = time.time()
CAPABILITY_SKIP = "capability '"


def capability_skip_reason(capability: str, *, declared: bool) -> str:
    """The skip reason of a test whose capability is missing; a requirement skipped for it is not applicable."""
    how = f"declare it with --capability {capability}" if declared else "detected from the store handle"
    return f"{CAPABILITY_SKIP}{capability}' not available ({how})"


_ID_PREFIX = re.compile(r"^((?:(?:ES|SS)-[A-Z]+-\d{3})(?:, (?:ES|SS)-[A-Z]+-\d{3})*): ")


def cited_ids(message: str) -> list[str]:
    """The requirement IDs a failure message starts with (``ES-SAVE-002: ...``)."""
    prefix = _ID_PREFIX.match(message)
    return prefix.group(1).split(", ") if prefix else []


@dataclass(frozen=True)
class CaseOutcome:
    """One conformance test's outcome; for a skip, ``messages`` holds the reason."""

    nodeid: str
    requirements: list[str]
    outcome: str  # passed | failed | skipped
    messages: list[str]

    def failures_of(self, req_id: str) -> list[str]:
        """The failure messages that concern ``req_id``: those naming it, or naming no requirement."""
        if self.outcome != "failed":
            return []
        if not self.messages:
            return [f"{self.nodeid} failed"]
        return [m for m in self.messages if req_id in cited_ids(m) or not cited_ids(m)]


@dataclass
class RequirementOutcome:
    requirement: Requirement
    outcome: str = "skipped"
    reason: str | None = None
    tests: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    @property
    def not_applicable(self) -> bool:
        return self.outcome == "skipped" and (self.reason or "").startswith(CAPABILITY_SKIP)


def summarise(outcomes: list[CaseOutcome]) -> list[RequirementOutcome]:
    results = {req.id: RequirementOutcome(req) for req in REQUIREMENTS}
    for test in outcomes:
        for req_id in test.requirements:
            result = results[req_id]
            if test.nodeid not in result.tests:
                result.tests.append(test.nodeid)
            failures = test.failures_of(req_id)
            if failures:
                result.outcome = "failed"
                result.reason = None
                result.messages.extend(m for m in failures if m not in result.messages)
            elif test.outcome == "passed" and result.outcome != "failed":
                result.outcome = "passed"
                result.reason = None
            elif test.outcome == "skipped" and result.outcome == "skipped" and result.reason is None:
                result.reason = test.messages[0] if test.messages else "skipped"
    for result in results.values():
        if result.outcome == "skipped" and result.reason is None:
            result.reason = "no test of this requirement ran (deselected or not collected)"
    return list(results.values())


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def build_report(
    store: str,
    profile: str,
    capabilities: frozenset[str],
    results: list[RequirementOutcome],
    statistics: dict[str, int] | None = None,
) -> dict[str, Any]:
    conformant = all(
        r.outcome == "passed" or r.not_applicable for r in results if r.requirement.level is Level.MUST
    )
    # "snapshots" is detected, not declared: it was there if its requirements were not skipped for it.
    detected = {
        r.requirement.capability for r in results
        if r.requirement.capability and r.requirement.capability not in capabilities and not r.not_applicable
        and r.outcome != "skipped"
    }
    return {
        "schemaVersion": 1,
        "store": store,
        "conformant": conformant,
        "profile": profile,
        "capabilities": sorted(capabilities | detected),
        "summary": {k: sum(r.outcome == k for r in results) for k in ("passed", "failed", "skipped")},
        "statistics": dict(sorted((statistics or {}).items())),
        "requirements": [
            {
                "id": r.requirement.id,
                "level": r.requirement.level.value,
                "title": r.requirement.title,
                "outcome": r.outcome,
                "reason": r.reason,
                "tests": r.tests,
                "messages": r.messages,
            }
            for r in results
        ],
        "environment": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "aether_conformance": _version("aether-conformance"),
            "pytest": _version("pytest"),
            "hypothesis": _version("hypothesis"),
        },
        "started": datetime.fromtimestamp(_STARTED, timezone.utc).isoformat().replace("+00:00", "Z"),
        "duration_s": round(time.time() - _STARTED, 3),
    }


def write_json_report(report: dict[str, Any], path: str | Path) -> None:
    from .schemas import validate

    validate("report", report)  # the report's own schema is its contract with CI tooling
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


_MARK = {"passed": "✅ passed", "failed": "❌ FAILED", "skipped": "➖ skipped"}


def markdown_summary(report: dict[str, Any]) -> str:
    """The table a person reads first: one row per requirement, then the verdict."""
    lines = [
        f"## aether-conformance: `{report['store']}` is "
        f"{'**conformant**' if report['conformant'] else '**NOT conformant**'}",
        "",
        "| Requirement | Level | Outcome | Detail |",
        "|---|---|---|---|",
    ]
    for req in report["requirements"]:
        if req["outcome"] == "failed":
            detail = req["messages"][0].splitlines()[0] if req["messages"] else ""
        elif req["outcome"] == "skipped":
            detail = req["reason"] or ""
        else:
            detail = f"{len(req['tests'])} test(s)"
        detail = detail.replace("|", "\\|")
        if len(detail) > 160:
            detail = detail[:157] + "..."
        lines.append(f"| {req['id']} {req['title']} | {req['level']} | {_MARK[req['outcome']]} | {detail} |")
    s, load = report["summary"], report.get("statistics", {})
    lines += ["", f"passed {s['passed']}, failed {s['failed']}, skipped {s['skipped']} "
                  f"(profile {report['profile']}, capabilities: {', '.join(report['capabilities']) or 'none'}; "
                  f"load: {load.get('save_attempts', 0):,} contended writes, "
                  f"{load.get('state_machine_examples', 0):,} state-machine examples)"]
    return "\n".join(lines) + "\n"


def badge(report: dict[str, Any]) -> dict[str, Any]:
    """A shields.io endpoint badge (https://shields.io/badges/endpoint-badge)."""
    must = [r for r in report["requirements"] if r["level"] == "MUST"]
    passed = sum(r["outcome"] == "passed" for r in must)
    return {
        "schemaVersion": 1,
        "label": "aether conformance",
        "message": f"{'conformant' if report['conformant'] else 'not conformant'} ({passed}/{len(must)} MUST)",
        "color": "brightgreen" if report["conformant"] else "red",
    }
