"""The HTML report: what render_html writes, then the page opened in headless Chromium.

The first half parses the markup with the standard library's HTML parser; the
second opens it in Debian's chromium (installed by .ci/run) to check that the
table and the timelines render, with a layout probe and a screenshot.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import uuid
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from aether_conformance.driver import StoreDriver
from aether_conformance.history import (
    CONFLICT,
    ERROR,
    LATEST,
    OK,
    SAVE,
    UNKNOWN,
    HistoryRecorder,
    Operation,
    StoredEvent,
    check_history,
)
from aether_conformance.html_report import MAX_DRAWN_OPERATIONS, history_artifact, render_html
from aether_conformance.report import CaseOutcome, build_report, summarise
from aether_conformance.requirements import REQUIREMENTS
from aether_conformance.schemas import validate
from aether_conformance.history import stored_events
from aether_conformance.writers import draw_plan, run_writers

HOSTILE = "</pre><script>alert(1)</script><img src=x onerror=alert(2)> lone \ud800 nul \x00 end"
CONC_TEST = "aether_conformance/suite/test_concurrency.py::test_concurrent_writers_on_one_handle"


# ---------------------------------------------------------------------------
# Inputs: a real report and real histories


def make_report(failed_message: str = "ES-CONC-001: two saves of version 1 both succeeded") -> dict:
    """A report made by the kit's own summarise/build_report: ES-CONC-001 failed, ES-CONC-002 skipped."""
    cases = []
    for req in REQUIREMENTS:
        nodeid = f"aether_conformance/suite/test_x.py::test_{req.id.lower().replace('-', '_')}"
        if req.id == "ES-CONC-001":
            cases.append(CaseOutcome(CONC_TEST, [req.id], "failed", [failed_message]))
        elif req.id == "ES-CONC-002":
            cases.append(CaseOutcome(nodeid, [req.id], "skipped", ["capability 'multiprocess' not available"]))
        else:
            cases.append(CaseOutcome(nodeid, [req.id], "passed", []))
    report = build_report("my_store.module:factory", "quick", frozenset(), summarise(cases),
                          {"save_attempts": 480, "acknowledged_saves": 61, "conflicts": 419},
                          expected_tests=len(cases), tests_ran=len(cases))
    validate("report", report)
    return report


def with_blocked(report: dict, req_id: str, root: str) -> dict:
    """Mark one requirement blocked by another, as summarise does when a precondition fails."""
    for req in report["requirements"]:
        if req["id"] == req_id:
            req.update(outcome="blocked", blockedBy=[root], reason=f"blocked by {root}")
    report["summary"]["blocked"] += 1
    report["summary"]["passed"] -= 1
    return report


def op(index: int, writer: str, kind: str, invoke: int, complete: int | None, outcome: str, *,
       version: int | None = None, current: int | None = None, detail: str = "", actor: str = "a") -> Operation:
    fields = {}
    if kind == SAVE:
        fields = {"event_id": f"e-{writer}-{index}", "digest": f"d{index}"}
    return Operation(index=index, writer=writer, kind=kind, actor_id=actor, invoke_ns=invoke * 1000,
                     complete_ns=None if complete is None else complete * 1000, outcome=outcome,
                     version=version, current_version=current, detail=detail, **fields)


def scripted_history() -> list[Operation]:
    """Three writers: w0 and w1 both win version 1 (the violation), a conflict, an error, a call that never returns."""
    return [
        op(0, "w0", LATEST, 0, 10, OK, version=0),
        op(1, "w1", LATEST, 1, 11, OK, version=0),
        op(2, "w2", LATEST, 2, 12, OK, version=0),
        op(3, "w0", SAVE, 20, 60, OK, version=1),
        op(4, "w1", SAVE, 21, 62, OK, version=1),
        op(5, "w2", SAVE, 22, 50, CONFLICT, version=1, current=1),
        op(6, "w2", SAVE, 70, 90, ERROR, version=2, detail=HOSTILE),
        op(7, "w0", SAVE, 71, 95, OK, version=2),
        op(8, "w1", SAVE, 72, None, UNKNOWN, version=3),
    ]


def scripted_artifact() -> dict:
    ops = scripted_history()
    final = [StoredEvent(1, "e-w0-3", "d3"), StoredEvent(2, "e-w0-7", "d7")]
    result = check_history(ops, {"a": final})
    assert [v.rule for v in result.violations][:1] == ["duplicate-winner"]
    return history_artifact(CONC_TEST, "ES-CONC-001", {"actor_id": "a", "seed": 7, "writers": 3, "rounds": 2},
                            ops, result)


def raced_artifact() -> tuple[dict, int]:
    """A real race: the zoo's check-then-write store, 4 writer threads, barrier-started rounds."""
    driver = StoreDriver("tests.zoo.specimens:check_then_write_race", timeout=10)
    try:
        handle = driver.new_handle()
        # The zoo's stores share state across handles (and tests): a fresh actor for every race.
        plan = draw_plan(f"race-html-{uuid.uuid4().hex[:12]}", "run1", writers=4, rounds=6, seed=11)
        recorder = HistoryRecorder()
        run_writers([handle], plan, recorder, call_timeout=10)
        operations = recorder.operations()
        result = check_history(operations, {plan.actor_id: stored_events(handle.get_events(plan.actor_id, 0))})
    finally:
        driver.close()
    # Every round starts all writers at one barrier and the store sleeps 1 ms between check and
    # write: several of them win one version in the first rounds (what the zoo test relies on too).
    assert not result.ok
    return history_artifact(CONC_TEST, "ES-CONC-001", plan, operations, result), plan.writers


# ---------------------------------------------------------------------------
# A small DOM built with the standard library's parser


_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node] = field(default_factory=list)
    text: str = ""  # all text inside, children included

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def find_all(self, tag: str | None = None, cls: str | None = None) -> list[Node]:
        found = []
        for child in self.children:
            if (tag is None or child.tag == tag) and (cls is None or cls in child.classes):
                found.append(child)
            found.extend(child.find_all(tag, cls))
        return found

    def find(self, tag: str | None = None, cls: str | None = None) -> Node:
        found = self.find_all(tag, cls)
        assert found, f"no <{tag} class={cls}> in the page"
        return found[0]


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag):
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data):
        for node in self.stack:
            node.text += data


def parse(markup: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(markup)
    builder.close()
    return builder.root


def ops_in(svg: Node) -> list[Node]:
    return svg.find_all("g", "op")


def bar_right(group: Node) -> float:
    bar = group.find("rect", "bar")
    return float(bar.attrs["x"]) + float(bar.attrs["width"])


# ---------------------------------------------------------------------------
# history_artifact


def test_history_artifact_of_a_real_race_has_the_documented_shape():
    artifact, writers = raced_artifact()
    assert set(artifact) == {"test", "requirement", "plan", "operations", "violation", "violating_operations"}
    assert artifact["test"] == CONC_TEST and artifact["requirement"] == "ES-CONC-001"
    assert artifact["plan"]["actor_id"].startswith("race-html-")
    assert {k: v for k, v in artifact["plan"].items() if k != "actor_id"} == {
        "run_id": "run1", "seed": 11, "writers": writers, "rounds": 6}
    assert json.loads(json.dumps(artifact)) == artifact  # JSON as it stands, for the artifacts directory
    indices = {record["index"] for record in artifact["operations"]}
    assert artifact["violating_operations"] and set(artifact["violating_operations"]) <= indices
    assert artifact["violation"]  # which rule breaks first depends on the threads' timing, not its presence


def test_history_artifact_takes_the_first_violation_and_explain_text():
    ops = scripted_history()
    result = check_history(ops, {"a": [StoredEvent(1, "e-w0-3", "d3"), StoredEvent(2, "e-w0-7", "d7")]})
    artifact = history_artifact("t", "ES-CONC-001", {"seed": 1}, ops, result)
    assert artifact["violation"] == result.explain()
    assert artifact["violating_operations"] == [3, 4]  # w0 and w1 both won version 1
    assert artifact["plan"] == {"seed": 1}


def test_history_artifact_of_a_clean_or_unchecked_history_has_no_violation():
    ops = [op(0, "w0", SAVE, 0, 5, OK, version=1)]
    clean = history_artifact("t", "ES-CONC-001", {}, ops, check_history(ops, {"a": [StoredEvent(1, "e-w0-0", "d0")]}))
    unchecked = history_artifact("t", "ES-CONC-001", {}, ops, None)
    for artifact in (clean, unchecked):
        assert artifact["violation"] is None and artifact["violating_operations"] == []


# ---------------------------------------------------------------------------
# The page, as markup


def test_requirement_table_shows_every_requirement_with_level_outcome_and_detail():
    report = with_blocked(make_report(), "ES-READ-001", "ES-SAVE-001")
    page = parse(render_html(report, []))
    rows = page.find("table", "requirements").find("tbody").find_all("tr")
    assert [row.find("td", "id").text for row in rows] == [req.id for req in REQUIREMENTS]
    by_id = {row.find("td", "id").text: row for row in rows}
    failed, blocked, skipped = by_id["ES-CONC-001"], by_id["ES-READ-001"], by_id["ES-CONC-002"]
    assert "failed" in failed.classes and "FAILED" in failed.find("span", "badge").text
    assert failed.find("pre", "message").text == "ES-CONC-001: two saves of version 1 both succeeded"
    assert "blocked" in blocked.classes and "blocked" in blocked.find("span", "badge").text
    assert blocked.find("p", "blocked-by").find("a").attrs["href"] == "#req-ES-SAVE-001"
    assert "multiprocess" in skipped.find("p", "reason").text
    assert {row.find("td", "level").text for row in rows} == {"MUST", "SHOULD", "MAY"}
    assert "passed" in by_id["ES-SAVE-001"].classes
    assert page.find("header").find("strong").text == "NOT conformant"
    assert "blocked 1" in page.find("header").text


def test_statistics_and_environment_are_listed():
    report = make_report()
    page = parse(render_html(report, []))
    stats = {row.find("th").text: row.find("td").text for row in page.find("table", "statistics").find_all("tr")}
    assert stats == {"acknowledged_saves": "61", "conflicts": "419", "save_attempts": "480"}
    env = {row.find("th").text: row.find("td").text for row in page.find("table", "environment").find_all("tr")}
    assert env == report["environment"]
    histories = [section for section in page.find_all("section") if section.attrs.get("id") == "histories"]
    assert "No concurrency history was recorded." in histories[0].text


def test_the_faults_of_a_fault_run_are_listed_with_how_unknown_outcomes_settled():
    fault_run = {
        "seed": 7, "kinds": ["kill", "pause"], "schedule": [{"kind": "kill", "gap": 1.2, "hold": 2.0}],
        "faults": [{"kind": "kill", "target": "postmaster pid 42 <and its backends>", "start": 1.2, "end": 5.5,
                    "recovery_seconds": 2.1, "error": None},
                   {"kind": "pause", "target": "n1", "start": 7.0, "end": None, "recovery_seconds": None,
                    "error": "n1 did not come back"}],
        "environment": {"backend": "postgresql", "fsync": "on"},
        "operations": {"total": 900, "save_attempts": 300, "acknowledged_saves": 120, "conflicts": 170},
        "unknown_outcomes": {"count": 3, "saves_landed_once": 1, "saves_never_landed": 1, "reads": 1, "calls": []},
        "verdict": "no anomaly found in 2 faults",
    }
    report = dict(make_report(), faults=[fault_run])
    validate("report", report)
    page = parse(render_html(report, []))
    (section,) = [s for s in page.find_all("section") if s.attrs.get("id") == "faults"]
    rows = [[cell.text for cell in row.find_all("td")] for row in section.find("table", "faults").find_all("tr")[1:]]
    assert rows == [["kill", "postmaster pid 42 <and its backends>", "1.2 s", "5.5 s", "2.1"],
                    ["pause", "n1", "7.0 s", "did not recover: n1 did not come back", "-"]]
    assert "no anomaly found in 2 faults" in section.text and "backend postgresql" in section.text
    assert "1 save(s) read back once, 1 never applied, 1 read(s); 120 of 300 saves acknowledged" in section.text
    assert "seed" not in page.find("table", "run").text  # not dumped raw under "Run"
    assert 'id="faults"' not in render_html(make_report(), [])


def test_store_text_is_escaped_everywhere_and_the_page_encodes():
    ops = [op(0, "<b>w0</b>", SAVE, 0, 5, ERROR, version=1, detail=HOSTILE, actor="<i>x</i>\ud800")]
    artifact = history_artifact("t::<script>", "ES-CONC-001", {"actor_id": HOSTILE}, ops, None)
    report = make_report(f"ES-CONC-001: {HOSTILE}")
    report["store"] = "evil<script>:x"
    markup = render_html(report, [artifact])
    markup.encode("utf-8")  # a lone surrogate would raise here
    page = parse(markup)
    assert not page.find_all("script") and not page.find_all("img") and not page.find_all("b")
    assert "\x00" not in markup
    message = page.find("pre", "message").text
    assert "<script>alert(1)</script>" in message and "\\ud800" in message and "\\x00" in message
    assert "evil<script>:x" in page.find("h1").text
    assert HOSTILE.split(" lone")[0] in page.find("p", "plan").text
    # Defence in depth: the page forbids scripts even if escaping ever slipped.
    csp = [m for m in page.find_all("meta") if m.attrs.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0].attrs["content"] and "script-src" not in csp[0].attrs["content"]


def test_timeline_has_one_lane_per_writer_and_every_call_drawn_by_outcome():
    artifact = scripted_artifact()
    page = parse(render_html(make_report(), [artifact]))
    svg = page.find("figure", "timeline").find("svg")
    assert [lane.attrs["data-writer"] for lane in svg.find_all("g", "lane")] == ["w0", "w1", "w2"]
    drawn = {int(g.attrs["data-index"]): g for g in ops_in(svg)}
    assert sorted(drawn) == list(range(9))
    expected = {0: {"read", "ok"}, 3: {"save", "ok"}, 5: {"save", "conflict"}, 6: {"save", "error"},
                8: {"save", "unknown"}}
    for index, classes in expected.items():
        assert classes <= drawn[index].classes, (index, drawn[index].classes)
    # Shape, not only colour: a dot ends a success, a cross a conflict, paths the error and the unknown.
    assert drawn[3].find_all("circle", "mark") and drawn[5].find("path", "mark").attrs["d"].count("l") == 2
    assert drawn[6].find_all("path", "mark") and drawn[8].find_all("path", "mark")
    assert "v1✗1" in drawn[5].text
    # The call that never returned runs past every answered call, to the end.
    assert bar_right(drawn[8]) > max(bar_right(g) for i, g in drawn.items() if i != 8)
    # Each call's tooltip says what it was, in words.
    assert "never returned" in drawn[8].find("title").text
    assert "<script>alert(1)</script>" in drawn[6].find("title").text


def test_first_violation_is_explained_above_the_timeline_and_its_calls_numbered():
    artifact = scripted_artifact()
    markup = render_html(make_report(), [artifact])
    page = parse(markup)
    history = page.find("article", "history")
    explanation = history.find("div", "violation")
    assert explanation.find("p", "violation-text").text == artifact["violation"]
    assert markup.index('class="explanation violation"') < markup.index('<figure class="timeline"')
    items = explanation.find("ol", "violating").find_all("li")
    assert [item.text.split()[0] for item in items] == ["#3", "#4"]
    violating = {int(g.attrs["data-index"]): g.find("text", "badge-num").text
                 for g in history.find_all("g", "violating")}
    assert violating == {3: "1", 4: "2"}
    assert history.find_all("rect", "violation-band")
    link = page.find("table", "requirements").find("p", "timeline-link").find("a")
    assert link.attrs["href"] == "#" + history.attrs["id"]


def _long_history(rounds: int, writers: int, race_round: int | None) -> tuple[list[Operation], list[StoredEvent]]:
    """A read and a save per writer per round; writer 0 wins each round, unless two win ``race_round``."""
    ops, stream, t, version = [], [], 0, 0
    for round_no in range(rounds):
        for w in range(writers):
            ops.append(op(len(ops), f"w{w}", LATEST, t + w, t + 5 + w, OK, version=version))
        t += 10
        for w in range(writers):
            wins = w == 0 or (round_no == race_round and w == 1)
            ops.append(op(len(ops), f"w{w}", SAVE, t + w, t + 5 + w, OK if wins else CONFLICT,
                          version=version + 1, current=None if wins else version + 1))
            if wins:
                stream.append(StoredEvent(version + 1, f"e-w{w}-{len(ops) - 1}", f"d{len(ops) - 1}"))
        version += 1
        t += 10
    stream = [s for s in stream if not (s.version == race_round + 1 and s.event_id.startswith("e-w1"))] \
        if race_round is not None else stream
    return ops, stream


def test_a_large_history_draws_the_window_around_the_violation_and_says_so():
    ops, stream = _long_history(rounds=500, writers=6, race_round=300)
    result = check_history(ops, {"a": stream})
    assert not result.ok
    artifact = history_artifact(CONC_TEST, "ES-CONC-001", {}, ops, result)
    markup = render_html(make_report(), [artifact])
    page = parse(markup)
    drawn = {int(g.attrs["data-index"]) for g in ops_in(page.find("figure", "timeline"))}
    assert set(artifact["violating_operations"]) <= drawn
    assert len(drawn) <= MAX_DRAWN_OPERATIONS + 6
    assert min(drawn) > 0 and max(drawn) < len(ops) - 1  # a window, not the start or the end
    note = page.find("p", "window-note").text
    assert "6,000 operations" in note and "around the first violation" in note
    assert len(markup) < 1_000_000


def test_a_large_clean_history_draws_its_opening_rounds():
    ops, stream = _long_history(rounds=500, writers=6, race_round=None)
    result = check_history(ops, {"a": stream})
    assert result.ok
    page = parse(render_html(make_report(), [history_artifact("t", "ES-CONC-001", {}, ops, result)]))
    drawn = sorted(int(g.attrs["data-index"]) for g in ops_in(page.find("figure", "timeline")))
    assert drawn[0] == 0 and len(drawn) <= MAX_DRAWN_OPERATIONS + 6
    assert "the opening rounds" in page.find("p", "window-note").text
    assert "no violation" in page.find("div", "explanation").text


def test_a_malformed_history_is_refused_naming_the_field():
    good = scripted_artifact()
    with pytest.raises(ValueError, match=r"histories\[0\]: missing field\(s\) violation"):
        render_html(make_report(), [{k: v for k, v in good.items() if k != "violation"}])
    broken = dict(good, operations=[dict(good["operations"][0], kind="append")])
    with pytest.raises(ValueError, match=r"histories\[0\]\.operations: Operation #0\.kind"):
        render_html(make_report(), [broken])
    with pytest.raises(ValueError, match=r"histories\[1\]\.violating_operations"):
        render_html(make_report(), [good, dict(good, violating_operations=[99])])


# ---------------------------------------------------------------------------
# In a real browser: headless Chromium


def _install_chromium() -> str:
    """Install Debian's chromium when we may (root with apt-get); return why not otherwise."""
    if not shutil.which("apt-get") or os.geteuid() != 0:
        return "apt-get is not available to this user"
    # The lock timeout lets parallel workers wait for one another's install instead of failing.
    install = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-q", "chromium"]
    done = subprocess.run(install, capture_output=True, text=True, timeout=1200)
    if done.returncode != 0:
        subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "update", "-q"], capture_output=True,
                       timeout=600)
        done = subprocess.run(install, capture_output=True, text=True, timeout=1200)
    return "" if done.returncode == 0 else f"apt-get install chromium failed: {done.stderr.strip()[-300:]}"


@pytest.fixture(scope="session")
def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        why = _install_chromium()
        found = shutil.which("chromium")
        if found is None:
            pytest.skip(f"headless Chromium is not installed and could not be installed ({why}); "
                        "install Debian's chromium package (.ci/run does)")
    return found


def run_chromium(chromium: str, tmp_path_factory: pytest.TempPathFactory, *args: str) -> str:
    """Run headless Chromium once, in its own session and temp dirs; return its stdout."""
    # A short path: Chromium's singleton socket lives under TMPDIR and a socket path has ~100 bytes.
    scratch = tmp_path_factory.mktemp("cr")
    for sub in ("profile", "tmp", "cache", "config"):
        (scratch / sub).mkdir()
    command = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={scratch / 'profile'}", *args,
    ]
    # Its temporary files and caches go under tmp_path, not /tmp or $HOME.
    env = dict(os.environ, TMPDIR=str(scratch / "tmp"), XDG_CACHE_HOME=str(scratch / "cache"),
               XDG_CONFIG_HOME=str(scratch / "config"))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               start_new_session=True)
    try:
        out, err = process.communicate(timeout=180)  # bounds a hang only
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # its helper processes share the session we made
        except ProcessLookupError:
            pass
    assert process.returncode == 0, f"chromium exited {process.returncode}: {err[-2000:]}"
    return out


# Test-only: appended to a copy of the page (whose policy forbids scripts) to measure the layout.
_PROBE = """<script>
const measure = (el) => { const r = el.getBoundingClientRect(); return [r.width, r.height]; };
const result = {
  rows: document.querySelectorAll('table.requirements tbody tr').length,
  table: measure(document.querySelector('table.requirements')),
  timelines: [...document.querySelectorAll('figure.timeline svg')].map((svg) => ({
    size: measure(svg),
    lanes: [...svg.querySelectorAll('g.lane')].map((g) => measure(g)[1]),
    bars: [...svg.querySelectorAll('g.op rect.bar')].map((b) => measure(b)),
    fills: Object.fromEntries(['save.ok', 'save.conflict', 'read.ok', 'save.error', 'save.unknown'].map((k) => {
      const bar = svg.querySelector(`g.op.${k} rect.bar`);
      return [k, bar ? getComputedStyle(bar).fill : null];
    })),
    dashed: [...svg.querySelectorAll('g.op.unknown rect.bar')].map((b) => getComputedStyle(b).strokeDasharray),
    violating: [...svg.querySelectorAll('g.op.violating rect.bar')].map((b) => getComputedStyle(b).strokeWidth),
  })),
  patterns: ['hatch-conflict', 'hatch-error', 'hatch-unknown'].filter((id) => document.getElementById(id)),
};
const out = document.createElement('pre');
out.id = 'probe';
out.textContent = JSON.stringify(result);
document.body.appendChild(out);
</script>"""


def _without_policy(markup: str) -> str:
    return re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", markup, count=1)


@pytest.fixture(scope="module")
def rendered() -> tuple[dict, list[dict], str]:
    report = with_blocked(make_report(f"ES-CONC-001: {HOSTILE}"), "ES-READ-001", "ES-SAVE-001")
    raced, _ = raced_artifact()
    histories = [scripted_artifact(), raced]
    return report, histories, render_html(report, histories)


def test_chromium_renders_the_table_and_the_timelines(chromium, tmp_path, tmp_path_factory, rendered):
    report, histories, markup = rendered
    page = tmp_path / "probe.html"
    page.write_text(_without_policy(markup).replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    dom = run_chromium(chromium, tmp_path_factory, "--window-size=1400,1000", "--dump-dom", page.as_uri())
    probe = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert probe, f"the layout probe did not run; DOM starts: {dom[:500]}"
    facts = json.loads(html.unescape(probe.group(1)))
    assert facts["rows"] == len(report["requirements"])
    assert facts["table"][0] > 600 and facts["table"][1] > 20 * len(report["requirements"])
    assert facts["patterns"] == ["hatch-conflict", "hatch-error", "hatch-unknown"]
    assert len(facts["timelines"]) == len(histories)
    for history, drawn in zip(histories, facts["timelines"]):
        writers = {record["writer"] for record in history["operations"]}
        assert len(drawn["lanes"]) == len(writers) and all(height > 20 for height in drawn["lanes"])
        assert len(drawn["bars"]) == len(history["operations"])
        assert all(width >= 2 and height >= 5 for width, height in drawn["bars"])
        assert drawn["size"][0] > 1000 and drawn["size"][1] > 40 * len(writers)
        assert len(drawn["violating"]) == len(history["violating_operations"])
        assert all(width == "3px" for width in drawn["violating"])
    scripted = facts["timelines"][0]
    assert scripted["fills"]["save.ok"] == "rgb(45, 164, 78)" and scripted["fills"]["read.ok"] == "rgb(79, 143, 216)"
    assert 'url("#hatch-conflict")' in scripted["fills"]["save.conflict"]
    assert 'url("#hatch-error")' in scripted["fills"]["save.error"]
    assert 'url("#hatch-unknown")' in scripted["fills"]["save.unknown"] and scripted["dashed"] == ["4px, 3px"]


def test_chromium_keeps_store_text_inert(chromium, tmp_path, tmp_path_factory, rendered):
    _, _, markup = rendered
    page = tmp_path / "report.html"
    # A script smuggled into the page itself is refused by the page's own policy.
    page.write_text(markup.replace("</body>", "<script>document.title = 'script ran';</script></body>"),
                    encoding="utf-8")
    dom = parse(run_chromium(chromium, tmp_path_factory, "--dump-dom", page.as_uri()))
    assert dom.find("title").text.startswith("aether-conformance: my_store.module:factory")
    assert len(dom.find_all("script")) == 1  # only the smuggled one; the store's text stayed text
    assert not dom.find_all("img")
    messages = [node.text for node in dom.find_all("pre", "message")]
    assert any("<script>alert(1)</script>" in text and "\\ud800" in text for text in messages)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_chromium_screenshot_of_the_report(chromium, tmp_path, tmp_path_factory, rendered):
    _, _, markup = rendered
    page = tmp_path / "report.html"
    page.write_text(markup, encoding="utf-8")
    shot = tmp_path / "report.png"
    run_chromium(chromium, tmp_path_factory, f"--screenshot={shot}", "--window-size=1400,1000", page.as_uri())
    assert _png_size(shot) == (1400, 1000)
    # A blank page compresses to a few kilobytes; the header, table and badges take far more.
    assert shot.stat().st_size > 40_000
