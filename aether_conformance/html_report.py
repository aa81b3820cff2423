"""The HTML report: one self-contained page a store author opens in a browser.

The page holds the verdict, the requirement table (levels, outcomes, messages),
the run's statistics and environment, and for every concurrency history a
timeline drawn as inline SVG: one lane per writer, each call a bar from its
invocation to its completion, the first violation's operations outlined and
explained in words above the drawing.

Everything is rendered here, in Python, into static markup: the page runs no
script, fetches nothing, and says so to the browser with a Content-Security-
Policy, so a store's error text that contains ``<script>`` stays text twice
over (escaped here, and refused by the browser if escaping ever slipped).
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .history import CONFLICT, ERROR, LATEST, OK, SAVE, UNKNOWN, CheckResult, Operation, history_from_json, history_to_json

if TYPE_CHECKING:
    from .writers import WriterPlan

__all__ = ["MAX_DRAWN_OPERATIONS", "history_artifact", "render_html"]

# A timeline stays readable (and the page light) up to a few hundred bars; beyond
# that only a window is drawn: around the first violation, or the opening rounds.
MAX_DRAWN_OPERATIONS = 400
# How many operations (in invocation order) the window keeps before the violation.
_CONTEXT_BEFORE = 60


# ---------------------------------------------------------------------------
# The history artifact the suite hands to render_html


def history_artifact(
    test: str,
    requirement: str,
    plan: WriterPlan | Mapping[str, Any],
    operations: Sequence[Operation],
    result: CheckResult | None,
) -> dict[str, Any]:
    """One concurrency test's history in the shape :func:`render_html` draws (and the artifacts store).

    ``plan`` is a :class:`~aether_conformance.writers.WriterPlan` or a mapping
    (kept as given); ``result`` is the checker's verdict, or None when the
    history was not checked.  ``violating_operations`` are the ``index``
    fields of the first violation's operations.
    """
    if isinstance(plan, Mapping):
        plan_dict = dict(plan)
    else:
        plan_dict = {
            name: getattr(plan, name)
            for name in ("actor_id", "run_id", "seed", "writers", "rounds")
            if hasattr(plan, name)
        }
    first = result.violations[0] if result is not None and result.violations else None
    return {
        "test": test,
        "requirement": requirement,
        "plan": plan_dict,
        "operations": history_to_json(operations),
        "violation": result.explain() if first is not None else None,
        "violating_operations": [op.index for op in first.operations] if first is not None else [],
    }


# ---------------------------------------------------------------------------
# Text: everything a store or a user supplied goes through _text


_INVISIBLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _show_invisible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _text(value: object) -> str:
    """``value`` as HTML text: escaped, with control characters and lone surrogates shown as escapes.

    A lone surrogate cannot be encoded as UTF-8, so left in place it would
    crash whoever writes the page to disk; shown as ``\\udc80`` it still tells
    the reader what the store sent.
    """
    return html.escape(_INVISIBLE.sub(_show_invisible, str(value)), quote=True)


def _ms(ns: float) -> str:
    return f"{ns / 1e6:,.3f} ms"


# ---------------------------------------------------------------------------
# The page


_OUTCOME_LABEL = {
    "passed": "✔ passed",
    "failed": "✘ FAILED",
    "blocked": "⊘ blocked",
    "skipped": "– skipped",
}


def render_html(report: Mapping[str, Any], histories: Sequence[Mapping[str, Any]]) -> str:
    """The whole report as one HTML document (no script, no network), for ``report.html``.

    ``report`` is the JSON report (schemas/report.schema.json); ``histories``
    are :func:`history_artifact` dicts.  A malformed history raises
    ValueError naming the history and the field.
    """
    drawn = [_parse_history(position, history) for position, history in enumerate(histories)]
    store = report.get("store", "?")
    conformant = bool(report.get("conformant"))
    verdict = "conformant" if conformant else "NOT conformant"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # No script, no fetch: the page is a document, and store text in it can never run.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; img-src data:\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>aether-conformance: {_text(store)} is {verdict}</title>",
        f"<style>{_CSS}</style>",
        "</head><body>",
        f'<header class="verdict {"pass" if conformant else "fail"}">',
        f'<h1>aether-conformance: <code>{_text(store)}</code> is <strong id="verdict">{verdict}</strong></h1>',
        f"<p>{_summary_line(report)}</p>",
        "</header>",
        "<main>",
        _at_a_glance(report, drawn),
        _requirements_section(report, drawn),
        _histories_section(drawn),
        _faults_section(report),
        _run_section(report),
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"


def _summary_line(report: Mapping[str, Any]) -> str:
    summary = report.get("summary") or {}
    counts = ", ".join(f"{_text(name)} {_text(count)}" for name, count in summary.items())
    profile = report.get("profile")
    capabilities = report.get("capabilities")
    bits = [counts] if counts else []
    if profile is not None:
        bits.append(f"profile {_text(profile)}")
    if capabilities is not None:
        bits.append(f"capabilities: {_text(', '.join(map(str, capabilities)) or 'none')}")
    return "; ".join(bits)


def _timelines_by_requirement(drawn: list[_History]) -> dict[str, list[_History]]:
    timelines: dict[str, list[_History]] = {}
    for history in drawn:
        timelines.setdefault(history.requirement, []).append(history)
    return timelines


def _at_a_glance(report: Mapping[str, Any], drawn: list[_History]) -> str:
    """What went wrong, first: one line per failed or blocked requirement, linking to its row and timelines."""
    problems = [req for req in report.get("requirements", []) if req.get("outcome") in ("failed", "blocked")]
    if not problems:
        return '<section id="at-a-glance" class="glance clean"><p>No requirement failed or was blocked.</p></section>'
    timelines = _timelines_by_requirement(drawn)
    items = []
    for req in problems:
        req_id = str(req.get("id", ""))
        if req.get("outcome") == "blocked":
            roots = req.get("blockedBy") or []
            what = "blocked by " + ", ".join([roots] if isinstance(roots, str) else map(str, roots)) if roots \
                else str(req.get("reason") or "blocked")
        else:
            messages = req.get("messages") or [""]
            what = messages[0].splitlines()[0] if messages[0] else "failed"
        if len(what) > 240:
            what = what[:239] + "… (full text in the table)"
        links = "".join(f' <a href="#{h.anchor}">timeline of {_text(h.test.rpartition("::")[2])}</a>'
                        for h in timelines.get(req_id, []))
        items.append(
            f'<li class="{"blocked" if req.get("outcome") == "blocked" else "failed"}">'
            f'<a href="#req-{_text(req_id)}">{_text(req_id)}</a> ({_text(req.get("level", ""))}) '
            f'{_text(req.get("title", ""))}: {_text(what)}{links}</li>'
        )
    return (f'<section id="at-a-glance" class="glance"><h2>At a glance</h2>'
            f'<ul>{"".join(items)}</ul></section>')


def _requirements_section(report: Mapping[str, Any], drawn: list[_History]) -> str:
    timelines = _timelines_by_requirement(drawn)
    rows = []
    for req in report.get("requirements", []):
        outcome = str(req.get("outcome", ""))
        css = outcome if outcome in _OUTCOME_LABEL else "other"
        label = _OUTCOME_LABEL.get(outcome, outcome)
        rows.append(
            f'<tr class="req {css}" id="req-{_text(req.get("id", ""))}">'
            f'<td class="id">{_text(req.get("id", ""))}</td>'
            f'<td class="level level-{_text(req.get("level", ""))}">{_text(req.get("level", ""))}</td>'
            f'<td class="title">{_text(req.get("title", ""))}</td>'
            f'<td class="outcome"><span class="badge {css}">{_text(label)}</span></td>'
            f'<td class="detail">{_requirement_detail(req, timelines.get(str(req.get("id")), []))}</td>'
            "</tr>"
        )
    return (
        '<section id="requirements"><h2>Requirements</h2>'
        # A filter without script: the radio buttons drive :has() selectors in the CSS.
        '<form class="filter" aria-label="Filter the requirements">Show: '
        '<label><input type="radio" name="show" id="show-all" checked> all</label> '
        '<label><input type="radio" name="show" id="show-problems"> failed and blocked only</label> '
        '<label><input type="radio" name="show" id="show-unpassed"> everything not passed</label>'
        "</form>"
        '<table class="requirements"><thead><tr><th scope="col">Requirement</th><th scope="col">Level</th>'
        '<th scope="col">Title</th><th scope="col">Outcome</th><th scope="col">Details</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _requirement_detail(req: Mapping[str, Any], timelines: list[_History]) -> str:
    parts = []
    blocked_by = req.get("blockedBy")
    if blocked_by:
        roots = [blocked_by] if isinstance(blocked_by, str) else list(blocked_by)
        links = ", ".join(f'<a href="#req-{_text(r)}">{_text(r)}</a>' for r in roots)
        parts.append(f'<p class="blocked-by">blocked by {links}</p>')
    for message in req.get("messages") or []:
        parts.append(f'<pre class="message">{_text(message)}</pre>')
    if req.get("reason"):
        parts.append(f'<p class="reason">{_text(req["reason"])}</p>')
    for history in timelines:
        parts.append(f'<p class="timeline-link"><a href="#{history.anchor}">timeline of {_text(history.test)}</a></p>')
    tests = req.get("tests") or []
    if tests:
        items = "".join(f"<li><code>{_text(t)}</code></li>" for t in tests)
        parts.append(f"<details><summary>{len(tests)} test(s)</summary><ul>{items}</ul></details>")
    return "".join(parts)


def _key_values(caption: str, values: Mapping[str, Any], css: str) -> str:
    rows = "".join(
        f'<tr><th scope="row">{_text(key)}</th><td>{_text(_format_value(value))}</td></tr>'
        for key, value in values.items()
    )
    return f'<table class="kv {css}"><caption>{_text(caption)}</caption><tbody>{rows}</tbody></table>'


def _format_value(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "none"
    return str(value)


# Top-level report fields drawn elsewhere on the page; any other scalar field is listed under "Run".
_SHOWN_ELSEWHERE = {"requirements", "statistics", "environment", "summary", "faults"}


def _run_section(report: Mapping[str, Any]) -> str:
    run = {
        key: value for key, value in report.items()
        if key not in _SHOWN_ELSEWHERE and not isinstance(value, Mapping)
    }
    tables = [_key_values("Run", run, "run")]
    statistics = report.get("statistics") or {}
    tables.append(
        _key_values("Statistics (load applied to the store)", statistics, "statistics")
        if statistics else '<p class="statistics">No load statistics were recorded.</p>'
    )
    tables.append(_key_values("Environment", report.get("environment") or {}, "environment"))
    return f'<section id="run"><h2>Run, statistics and environment</h2><div class="tables">{"".join(tables)}</div></section>'


def _faults_section(report: Mapping[str, Any]) -> str:
    """Each fault test's faults (kind, target, injected, healthy again) and how its unknown outcomes settled."""
    runs = report.get("faults") or []
    if not runs:
        return ""
    blocks = []
    for run in runs:
        rows = []
        for fault in run.get("faults") or []:
            healed = (f"{fault['end']} s" if fault.get("end") is not None
                      else f"did not recover: {fault.get('error')}")
            rows.append(f"<tr><td>{_text(fault.get('kind'))}</td><td>{_text(fault.get('target'))}</td>"
                        f"<td>{_text(fault.get('start'))} s</td><td>{_text(healed)}</td>"
                        f"<td>{_text(fault['recovery_seconds'] if fault.get('end') is not None else '-')}</td></tr>")
        unknown = run.get("unknown_outcomes") or {}
        operations = run.get("operations") or {}
        facts = ", ".join(f"{key} {value}" for key, value in (run.get("environment") or {}).items())
        blocks.append(
            f"<h3>{_text(run.get('verdict'))}</h3>"
            f"<p>schedule seed {_text(run.get('seed'))}; {_text(facts)}</p>"
            '<table class="faults"><thead><tr><th scope="col">fault</th><th scope="col">hit</th>'
            '<th scope="col">injected at</th><th scope="col">healthy again at</th>'
            f'<th scope="col">recovery (s)</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
            f"<p>{_text(unknown.get('count', 0))} call(s) with unknown outcome: "
            f"{_text(unknown.get('saves_landed_once', 0))} save(s) read back once, "
            f"{_text(unknown.get('saves_never_landed', 0))} never applied, {_text(unknown.get('reads', 0))} read(s); "
            f"{_text(operations.get('acknowledged_saves', 0))} of {_text(operations.get('save_attempts', 0))} "
            "saves acknowledged.</p>"
        )
    return f'<section id="faults"><h2>Faults injected</h2>{"".join(blocks)}</section>'


# ---------------------------------------------------------------------------
# Histories


@dataclass
class _History:
    position: int
    test: str
    requirement: str
    plan: Mapping[str, Any]
    operations: list[Operation]
    violation: str | None
    violating: list[int]

    @property
    def anchor(self) -> str:
        return f"history-{self.position}"


def _parse_history(position: int, history: Mapping[str, Any]) -> _History:
    where = f"histories[{position}]"
    if not isinstance(history, Mapping):
        raise ValueError(f"{where}: must be a dict made by history_artifact(), got {type(history).__name__}")
    missing = [k for k in ("test", "requirement", "plan", "operations", "violation", "violating_operations")
               if k not in history]
    if missing:
        raise ValueError(f"{where}: missing field(s) {', '.join(missing)} (see history_artifact())")
    try:
        operations = history_from_json(history["operations"])
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}.operations: {error}") from None
    indices = {op.index for op in operations}
    violating = history["violating_operations"]
    if not isinstance(violating, list) or any(i not in indices for i in violating):
        raise ValueError(
            f"{where}.violating_operations: must list index fields of the history's operations, got {violating!r}"
        )
    violation = history["violation"]
    if violation is not None and not isinstance(violation, str):
        raise ValueError(f"{where}.violation: must be a str or null, got {type(violation).__name__}")
    plan = history["plan"]
    if not isinstance(plan, Mapping):
        raise ValueError(f"{where}.plan: must be a dict, got {type(plan).__name__}")
    return _History(position, str(history["test"]), str(history["requirement"]), plan, operations,
                    violation, list(violating))


def _histories_section(drawn: list[_History]) -> str:
    if not drawn:
        return '<section id="histories"><h2>Concurrency histories</h2><p>No concurrency history was recorded.</p></section>'
    return (
        '<section id="histories"><h2>Concurrency histories</h2>'
        + _SVG_DEFS
        + _LEGEND
        + "".join(_history_block(history) for history in drawn)
        + "</section>"
    )


def _history_block(history: _History) -> str:
    ops = sorted(history.operations, key=lambda op: (op.invoke_ns, op.index))
    writers = sorted({op.writer for op in ops}, key=_natural)
    plan = ", ".join(f"{_text(k)} {_text(v)}" for k, v in history.plan.items())
    head = (
        f'<article class="history" id="{history.anchor}">'
        f'<h3><span class="req-id">{_text(history.requirement)}</span> <code>{_text(history.test)}</code></h3>'
        f'<p class="plan">{len(ops):,} operations by {len(writers)} writer(s); plan: {plan or "not recorded"}</p>'
    )
    if not ops:
        return head + "<p>The history is empty: no store call was recorded.</p></article>"
    t0 = ops[0].invoke_ns
    by_index = {op.index: op for op in ops}
    highlighted = [by_index[i] for i in history.violating]
    window = _choose_window(ops, highlighted)
    numbers = {op.index: n for n, op in enumerate(sorted(highlighted, key=lambda o: (o.invoke_ns, o.index)), 1)}
    explanation = _explanation(history, highlighted, numbers, window, t0)
    svg = _timeline_svg(history, window, writers, numbers, t0)
    return head + explanation + f'<p class="window-note">{_text(window.note)}</p>' + svg + "</article>"


def _explanation(history: _History, highlighted: list[Operation], numbers: dict[int, int],
                 window: _Window, t0: int) -> str:
    if history.violation is None:
        failures = [op for op in history.operations if op.outcome in (ERROR, UNKNOWN)]
        if not failures:
            return '<div class="explanation ok"><p>The checker found no violation in this history.</p></div>'
        return (
            '<div class="explanation errors"><p>The checker found no violation, but '
            f"{sum(op.outcome == ERROR for op in failures)} call(s) raised an error and "
            f"{sum(op.outcome == UNKNOWN for op in failures)} never returned; "
            f"the first: {_text(_describe(failures[0], t0))}.</p></div>"
        )
    items = []
    for op in sorted(highlighted, key=lambda o: numbers[o.index]):
        outside = "" if op.index in window.drawn_indices else " <em>(outside the drawn window)</em>"
        items.append(f'<li value="{numbers[op.index]}">{_text(_describe(op, t0))}{outside}</li>')
    listing = f'<ol class="violating">{"".join(items)}</ol>' if items else ""
    return (
        '<div class="explanation violation" role="note"><h4>First violation</h4>'
        f'<p class="violation-text">{_text(history.violation)}</p>'
        + (f"<p>The operations involved are outlined in black and numbered in the timeline:</p>{listing}"
           if items else "")
        + "</div>"
    )


def _describe(op: Operation, t0: int) -> str:
    if op.kind == SAVE:
        what = f"#{op.index} {op.writer} save v{op.version} (event {op.event_id})"
    elif op.outcome == OK:
        what = f"#{op.index} {op.writer} read latest = {op.version}"
    else:
        what = f"#{op.index} {op.writer} read latest"
    invoked = f"invoked at {_ms(op.invoke_ns - t0)}"
    if op.outcome == OK:
        end = f"ok at {_ms(op.complete_ns - t0)}"
    elif op.outcome == CONFLICT:
        end = f"version conflict (current version {op.current_version}) at {_ms(op.complete_ns - t0)}"
    elif op.outcome == ERROR:
        detail = op.detail if len(op.detail) <= 300 else op.detail[:297] + "..."
        end = f"error at {_ms(op.complete_ns - t0)}: {detail}"
    else:
        end = "never returned (outcome unknown)"
    actor = f" on actor {op.actor_id}" if op.actor_id else ""
    return f"{what}{actor}, {invoked}, {end}"


def _natural(name: str) -> list[Any]:
    # w2 before w10; process writers p1w3 group by process.
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


@dataclass
class _Window:
    start_ns: int
    end_ns: int  # the right edge of the drawing
    history_end_ns: int  # where an operation that never returned is drawn to
    operations: list[Operation]
    note: str

    @property
    def drawn_indices(self) -> set[int]:
        return {op.index for op in self.operations}


def _choose_window(ops: list[Operation], highlighted: list[Operation]) -> _Window:
    """The operations to draw (``ops`` in invocation order): all of them, or a window of about MAX_DRAWN_OPERATIONS."""
    history_end = max(op.invoke_ns if op.complete_ns is None else op.complete_ns for op in ops)
    count = len(ops)
    if count <= MAX_DRAWN_OPERATIONS:
        return _Window(ops[0].invoke_ns, history_end, history_end, ops, f"All {count:,} operations are drawn.")
    position = {op.index: p for p, op in enumerate(ops)}
    focus = sorted(position[op.index] for op in highlighted)
    if focus:
        what = "around the first violation"
    else:
        failed = [p for p, op in enumerate(ops) if op.outcome in (ERROR, UNKNOWN)]
        focus, what = (failed[:1], "around the first failed call") if failed else ([], "the opening rounds")
    lo = max(0, focus[0] - _CONTEXT_BEFORE) if focus else 0
    hi = min(count, lo + MAX_DRAWN_OPERATIONS) - 1
    lo = max(0, hi + 1 - MAX_DRAWN_OPERATIONS)
    start = ops[lo].invoke_ns
    finished = [op.complete_ns for op in ops[lo:hi + 1] if op.complete_ns is not None]
    end = max([ops[hi].invoke_ns, *finished]) if hi < count - 1 else history_end
    # Draw every call in flight during the window too, clipped at its edges.
    drawn = [
        op for op in ops
        if op.invoke_ns <= end and (history_end if op.complete_ns is None else op.complete_ns) >= start
    ]
    t0 = ops[0].invoke_ns
    note = (
        f"This history has {count:,} operations; drawn are the {len(drawn):,} in flight between "
        f"{_ms(start - t0)} and {_ms(end - t0)}, {what} (operations #{ops[lo].index} to #{ops[hi].index} "
        f"in invocation order). The full history is in the artifacts."
    )
    return _Window(start, end, history_end, drawn, note)


# -- the SVG timeline ----------------------------------------------------------

_LANE_H = 40
_BAR_MID = 25  # a bar's centre below its lane's top: room above it for a violation's number
_LABEL_W = 110
_PLOT_W = 1080
_RIGHT_PAD = 30
_TOP = 16  # room for the "end" label
_AXIS_H = 34
_SAVE_H = 18
_READ_H = 8
_MIN_BAR = 3.0


def _timeline_svg(history: _History, window: _Window, writers: list[str], numbers: dict[int, int], t0: int) -> str:
    width = _LABEL_W + _PLOT_W + _RIGHT_PAD
    height = _TOP + len(writers) * _LANE_H + _AXIS_H
    span = max(window.end_ns - window.start_ns, 1)
    # Calls that never returned run past the last answer, into a strip at the right edge.
    reaches_end = window.end_ns >= window.history_end_ns
    tail = _PLOT_W * 0.03 if reaches_end and any(op.complete_ns is None for op in window.operations) else 0.0
    scale = (_PLOT_W - tail) / span

    def x(ns: float) -> float:
        return _LABEL_W + (ns - window.start_ns) * scale

    lane_of = {writer: i for i, writer in enumerate(writers)}
    out = [
        f'<figure class="timeline"><svg xmlns="http://www.w3.org/2000/svg" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'aria-labelledby="{history.anchor}-title">'
        f'<title id="{history.anchor}-title">Timeline of {_text(history.test)}: {len(writers)} writer lanes, '
        f"{len(window.operations)} operations drawn</title>",
    ]
    for writer, lane in lane_of.items():
        top = _TOP + lane * _LANE_H
        out.append(
            f'<g class="lane" data-writer="{_text(writer)}">'
            f'<rect class="lane-bg" x="0" y="{top}" width="{width}" height="{_LANE_H}"/>'
            f'<text class="lane-label" x="{_LABEL_W - 8}" y="{top + _BAR_MID + 4}">{_text(_clip(writer, 14))}</text>'
            "</g>"
        )
    out.append(_axis(window, t0, x, height, tail))
    involved = [op for op in window.operations if op.index in numbers]
    if involved:
        # A band across every lane over the violation's time span, findable in a dense drawing.
        left = x(max(window.start_ns, min(op.invoke_ns for op in involved)))
        right = x(min(window.end_ns, max(window.history_end_ns if op.complete_ns is None else op.complete_ns
                                          for op in involved)))
        out.append(f'<rect class="violation-band" x="{left - 4:.1f}" y="{_TOP}" '
                   f'width="{right - left + 8:.1f}" height="{len(writers) * _LANE_H}"/>')
    # Highlighted operations last, so their outlines sit on top.
    for op in sorted(window.operations, key=lambda o: o.index in numbers):
        out.append(_operation(op, lane_of[op.writer], x, window, numbers.get(op.index), t0, tail))
    out.append("</svg></figure>")
    return "".join(out)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _axis(window: _Window, t0: int, x: Any, height: int, tail: float) -> str:
    base = height - _AXIS_H + 4
    span = window.end_ns - window.start_ns
    step = _nice_step(span / 8) if span > 0 else 1
    first = math.ceil((window.start_ns - t0) / step) * step
    decimals = max(0, 6 - len(str(step)) + 1)  # enough to tell neighbouring ticks apart
    ticks = []
    at = first
    while at + t0 <= window.end_ns:
        px = x(at + t0)
        ticks.append(
            f'<line class="tick" x1="{px:.1f}" y1="{_TOP}" x2="{px:.1f}" y2="{base}"/>'
            f'<text class="tick-label" x="{px:.1f}" y="{base + 14}">{at / 1e6:,.{decimals}f}</text>'
        )
        at += step
    unit = '<text class="axis-unit" x="8" y="{:.0f}">time (ms)</text>'.format(base + 14)
    end = ""
    if tail:
        edge = x(window.end_ns)
        end = (f'<line class="end-line" x1="{edge:.1f}" y1="{_TOP - 6}" x2="{edge:.1f}" y2="{base}"/>'
               f'<text class="end-label" x="{edge + 4:.1f}" y="{_TOP - 8}">end →</text>')
    return f'<g class="axis">{"".join(ticks)}{unit}{end}</g>'


def _nice_step(raw: float) -> int:
    """A tick spacing of 1, 2 or 5 times a power of ten nanoseconds, at least ``raw``."""
    power = 10 ** max(0, math.floor(math.log10(max(raw, 1))))
    for factor in (1, 2, 5, 10):
        if factor * power >= raw:
            return int(factor * power)
    return int(10 * power)


_KIND_CLASS = {OK: "ok", CONFLICT: "conflict", ERROR: "error", UNKNOWN: "unknown"}


def _operation(op: Operation, lane: int, x: Any, window: _Window, number: int | None, t0: int,
               tail: float) -> str:
    mid = _TOP + lane * _LANE_H + _BAR_MID
    height = _SAVE_H if op.kind == SAVE else _READ_H
    left = x(max(op.invoke_ns, window.start_ns))
    # A call still running at the window's right edge is cut there; one that never returned
    # runs on into the tail strip when the window reaches the end of the history.
    cut = (op.complete_ns if op.complete_ns is not None else window.history_end_ns + 1) > window.end_ns
    right = x(min(op.complete_ns if op.complete_ns is not None else window.end_ns, window.end_ns))
    if op.complete_ns is None and window.end_ns >= window.history_end_ns:
        right += tail
        cut = False
    right = max(right, left + _MIN_BAR)
    kind = "read" if op.kind == LATEST else "save"
    outcome = _KIND_CLASS[op.outcome]
    css = f"op {kind} {outcome}" + (" violating" if number else "")
    top = mid - height / 2
    parts = [
        f'<g class="{css}" data-index="{op.index}"><title>{_text(_describe(op, t0))}</title>',
        f'<rect class="bar" x="{left:.1f}" y="{top:.1f}" width="{right - left:.1f}" height="{height}" rx="2"/>',
        # A chevron, not an outcome mark, where the window cuts a call short.
        f'<path class="clipped" d="M{right - 5:.1f},{mid - 5} l5,5 l-5,5"/>' if cut else _end_marker(op, right, mid),
    ]
    if op.invoke_ns < window.start_ns:
        parts.append(f'<path class="clipped" d="M{left + 5:.1f},{mid - 5} l-5,5 l5,5"/>')
    label = _bar_label(op)
    if op.kind == SAVE and right - left > 9 * len(label) + 14:
        parts.append(f'<text class="bar-label" x="{left + 3:.1f}" y="{mid + 4:.1f}">{_text(label)}</text>')
    if number:
        parts.append(
            f'<circle class="badge-dot" cx="{left:.1f}" cy="{mid - 16:.1f}" r="7"/>'
            f'<text class="badge-num" x="{left:.1f}" y="{mid - 12:.1f}">{number}</text>'
        )
    parts.append("</g>")
    return "".join(parts)


def _bar_label(op: Operation) -> str:
    if op.outcome == CONFLICT:
        return f"v{op.version}✗{op.current_version}"
    if op.outcome == ERROR:
        return f"v{op.version} error"
    if op.outcome == UNKNOWN:
        return f"v{op.version} ?"
    return f"v{op.version}"


def _end_marker(op: Operation, right: float, mid: float) -> str:
    """A shape at the completion end, so outcomes differ in shape as well as colour."""
    if op.outcome == OK:
        return f'<circle class="mark" cx="{right:.1f}" cy="{mid:.1f}" r="{4 if op.kind == SAVE else 3}"/>'
    if op.outcome == CONFLICT:
        return (f'<path class="mark cross" d="M{right - 5:.1f},{mid - 5:.1f} l10,10 m0,-10 l-10,10"/>')
    if op.outcome == ERROR:
        return f'<path class="mark" d="M{right:.1f},{mid - 7:.1f} l6,12 h-12 z"/>'
    return f'<path class="mark" d="M{right - 2:.1f},{mid - 6:.1f} l8,6 l-8,6 z"/>'


def _legend_item(css: str, text: str, marker: str) -> str:
    return (f'<li><svg width="64" height="22" aria-hidden="true"><g class="{css}">'
            f'<rect class="bar" x="4" y="{11 - (9 if "save" in css else 4)}" width="46" '
            f'height="{18 if "save" in css else 8}" rx="2"/>{marker}</g></svg><span>{text}</span></li>')


# The fill patterns, defined once for every timeline and the legend (ids are page-wide).
_SVG_DEFS = (
    '<svg class="defs" width="0" height="0" aria-hidden="true"><defs>'
    '<pattern id="hatch-conflict" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
    '<rect width="6" height="6" fill="#f5c26b"/><line x1="0" y1="0" x2="0" y2="6" stroke="#a35f00" stroke-width="2"/>'
    "</pattern>"
    '<pattern id="hatch-error" width="6" height="6" patternUnits="userSpaceOnUse">'
    '<rect width="6" height="6" fill="#f0a58a"/><path d="M0,0 l6,6 M6,0 l-6,6" stroke="#8f2a00" stroke-width="1.2"/>'
    "</pattern>"
    '<pattern id="hatch-unknown" width="8" height="8" patternUnits="userSpaceOnUse" patternTransform="rotate(-45)">'
    '<rect width="8" height="8" fill="#eeeeee"/><line x1="0" y1="0" x2="0" y2="8" stroke="#b0b0b0" stroke-width="2"/>'
    "</pattern>"
    "</defs></svg>"
)

_LEGEND = (
    '<div class="legend" aria-label="Legend of the timelines"><p>Each bar is one call, from its invocation '
    "to its completion; one lane per writer; time runs left to right (milliseconds since the history's first "
    "call). Tall bars are saves, thin bars are latest-version reads; hover a bar for the call's details.</p><ul>"
    + _legend_item("op save ok", "save acknowledged (a winner): solid green, dot at the end",
                   '<circle class="mark" cx="50" cy="11" r="4"/>')
    + _legend_item("op save conflict", "version conflict: orange stripes, ✗ at the end (label v<i>attempted</i>✗<i>current</i>)",
                   '<path class="mark cross" d="M45,6 l10,10 m0,-10 l-10,10"/>')
    + _legend_item("op read ok", "latest-version read: thin blue bar, dot at the end",
                   '<circle class="mark" cx="50" cy="11" r="3"/>')
    + _legend_item("op save error", "error: red cross-hatch, ▲ at the end",
                   '<path class="mark" d="M50,4 l6,12 h-12 z"/>')
    + _legend_item("op save unknown", "never returned (outcome unknown): dashed grey, runs to the end of the run, ▶",
                   '<path class="mark" d="M48,5 l8,6 l-8,6 z"/>')
    + _legend_item("op save ok violating", "part of the first violation: thick black outline, numbered",
                   '<circle class="mark" cx="50" cy="11" r="4"/>')
    + "</ul></div>"
)

_CSS = """
:root { color-scheme: light; --pass: #1a7f37; --fail: #b42318; --blocked: #8a4b00; --skip: #57606a; }
body { font: 15px/1.45 "DejaVu Sans", system-ui, sans-serif; margin: 0; color: #1f2328; background: #fff; }
main { padding: 0 24px 48px; }
header.verdict { padding: 14px 24px; color: #fff; }
header.verdict.pass { background: var(--pass); }
header.verdict.fail { background: var(--fail); }
header h1 { margin: 0 0 4px; font-size: 22px; }
header code { background: rgba(255,255,255,.18); padding: 0 6px; border-radius: 4px; }
.glance ul { padding-left: 20px; margin: 6px 0; }
.glance li { margin: 4px 0; }
.glance li.failed::marker { content: "✘  "; color: var(--fail); }
.glance li.blocked::marker { content: "⊘  "; color: var(--blocked); }
.glance.clean { padding-top: 12px; color: var(--pass); }
h2 { margin-top: 28px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
table { border-collapse: collapse; }
table.requirements { width: 100%; }
table.requirements th, table.requirements td { border-bottom: 1px solid #d0d7de; padding: 6px 8px; text-align: left; vertical-align: top; }
table.requirements thead th { background: #f6f8fa; }
td.id { white-space: nowrap; font-family: "DejaVu Sans Mono", monospace; }
td.detail { max-width: 720px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-weight: bold; white-space: nowrap; border: 1px solid; }
.badge.passed { color: var(--pass); border-color: var(--pass); background: #dafbe1; }
.badge.failed { color: #fff; background: var(--fail); border-color: var(--fail); }
.badge.blocked { color: var(--blocked); background: #fff1d6; border-color: var(--blocked); border-style: dashed; }
.badge.skipped, .badge.other { color: var(--skip); border-color: #d0d7de; background: #f6f8fa; }
tr.failed { background: #fff5f4; }
tr.blocked { background: #fffaf0; }
pre.message { white-space: pre-wrap; word-break: break-word; margin: 0 0 6px; font: 13px/1.4 "DejaVu Sans Mono", monospace; background: #f6f8fa; padding: 6px; border-left: 3px solid var(--fail); }
p.reason, p.blocked-by, p.timeline-link { margin: 0 0 4px; }
details summary { cursor: pointer; color: #57606a; }
form.filter { margin: 8px 0; }
body:has(#show-problems:checked) tr.req:not(.failed):not(.blocked) { display: none; }
body:has(#show-unpassed:checked) tr.req.passed { display: none; }
.tables { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
table.kv caption { text-align: left; font-weight: bold; padding-bottom: 4px; }
table.kv th, table.kv td { border-bottom: 1px solid #eaeef2; padding: 3px 10px 3px 0; text-align: left; }
table.kv th { font-weight: normal; color: #57606a; }
article.history { margin: 20px 0 32px; }
article.history h3 { margin-bottom: 4px; }
.req-id { font-family: "DejaVu Sans Mono", monospace; }
.explanation { padding: 8px 12px; border-radius: 6px; margin: 8px 0; }
.explanation.violation { background: #fff5f4; border: 2px solid var(--fail); }
.explanation.errors { background: #fffaf0; border: 1px solid var(--blocked); }
.explanation.ok { background: #dafbe1; border: 1px solid var(--pass); }
.explanation h4 { margin: 0 0 4px; color: var(--fail); }
.violation-text { white-space: pre-wrap; word-break: break-word; }
p.window-note, p.plan { color: #57606a; margin: 4px 0; }
svg.defs { position: absolute; }
figure.timeline { margin: 0; overflow-x: auto; }
figure.timeline svg { max-width: 100%; height: auto; font: 12px "DejaVu Sans", sans-serif; }
.lane-bg { fill: #fff; }
.lane:nth-of-type(even) .lane-bg { fill: #f6f8fa; }
.lane-label { text-anchor: end; font-family: "DejaVu Sans Mono", monospace; fill: #1f2328; }
.tick { stroke: #d0d7de; stroke-width: 1; }
.tick-label { text-anchor: middle; fill: #57606a; font-size: 11px; }
.axis-unit { fill: #57606a; font-size: 11px; }
.end-line { stroke: #57606a; stroke-dasharray: 3 3; }
.end-label { fill: #57606a; font-size: 11px; }
.op .bar { stroke-width: 1; }
.op.save.ok .bar { fill: #2da44e; stroke: #116329; }
.op.save.ok .mark { fill: #116329; }
.op.conflict .bar { fill: url(#hatch-conflict); stroke: #a35f00; }
.op.conflict .mark { stroke: #7a4700; stroke-width: 2.4; fill: none; }
.op.read .bar { fill: #4f8fd8; stroke: #0a4a94; }
.op.read .mark { fill: #0a4a94; }
.op.error .bar { fill: url(#hatch-error); stroke: #8f2a00; }
.op.error .mark { fill: #8f2a00; }
.op.unknown .bar { fill: url(#hatch-unknown); stroke: #57606a; stroke-dasharray: 4 3; }
.op.unknown .mark { fill: #57606a; }
.op .clipped { stroke: #1f2328; fill: none; }
.bar-label { font-size: 11px; fill: #1f2328; pointer-events: none; }
.op.save.ok .bar-label { fill: #fff; }
.op.violating .bar { stroke: #000; stroke-width: 3; }
.badge-dot { fill: #000; }
.violation-band { fill: #ffd8d3; opacity: .55; }
.badge-num { fill: #fff; font-size: 11px; font-weight: bold; text-anchor: middle; }
.legend ul { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 4px 24px; }
.legend li { display: flex; align-items: center; gap: 6px; }
ol.violating { margin: 4px 0; }
"""
