"""``aether-conformance``: certify a store, print the verdict, write the reports.

    aether-conformance run MODULE:ATTR [--capability NAME]... [--profile quick|default|thorough]
                       [--artifacts DIR] [--json-report PATH] [--junitxml PATH] [--badge PATH]
                       [--timeout S] [--nats-server | --nats-cluster N] [--faults kill,pause,partition]
                       [--fault-seed N] [--fault-report PATH] [--postgres-server] [-v] [-- extra pytest args]
    aether-conformance requirements          print the requirement catalog (Markdown)

Exit codes: 0 the run was complete and the store is conformant (every
applicable MUST passed); 1 a MUST requirement failed or was blocked; 2 nothing
was certified: the store could not be loaded, the arguments are wrong, no
conformance test ran, or the run was interrupted or incomplete without finding
a failure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

from .driver import StoreLoadError, ensure_import_path
from .html_report import render_html
from .preflight import check_store
from .profiles import PROFILES
from .report import IN_PROGRESS, RUNNING_FILE, badge, markdown_summary, verdict
from .requirements import CAPABILITIES, DETECTED_CAPABILITIES, markdown_table
from .watchdog import Watchdog

EXIT_CONFORMANT, EXIT_NOT_CONFORMANT, EXIT_USAGE = 0, 1, 2
DEFAULT_ARTIFACTS = "aether-conformance-report"
DEFAULT_TIMEOUT, FAULT_TIMEOUT = 10.0, 60.0


class UsageError(Exception):
    """Bad arguments or environment: one line on stderr, exit 2."""


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"aether-conformance: {message} (see aether-conformance {self.prog.split()[-1]} --help)\n")


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--timeout must be a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"--timeout must be a finite number of seconds above 0, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="aether-conformance", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)
    run = commands.add_parser("run", help="run the conformance suite against a store")
    run.add_argument("store", metavar="MODULE:ATTR", help="zero-argument factory returning a store handle")
    run.add_argument("--capability", action="append", default=[], metavar="NAME",
                     choices=[name for name in CAPABILITIES if name not in (*DETECTED_CAPABILITIES, "faults")],
                     help="declare a capability (repeatable): multiprocess")
    run.add_argument("--profile", choices=list(PROFILES), default="default")
    run.add_argument("--timeout", type=_timeout, default=None, metavar="SECONDS",
                     help=f"per store call (default {DEFAULT_TIMEOUT:g}; {FAULT_TIMEOUT:g} with --faults, "
                          "to outlast a leader election)")
    run.add_argument("--artifacts", metavar="DIR", default=DEFAULT_ARTIFACTS,
                     help=f"directory for report.json, junit.xml, badge.json and failure details, replaced on "
                          f"every run (default ./{DEFAULT_ARTIFACTS})")
    run.add_argument("--json-report", metavar="PATH", help="also write the JSON report here (schemas/report.schema.json)")
    run.add_argument("--junitxml", metavar="PATH", help="also write the JUnit XML here")
    run.add_argument("--badge", metavar="PATH", help="also write the shields.io endpoint badge JSON here")
    run.add_argument("--nats-server", action="store_true",
                     help="start a local nats-server (127.0.0.1, free port, temp store) and export AETHER_NATS_URL")
    run.add_argument("--nats-cluster", type=int, metavar="N",
                     help="start an N-node JetStream cluster (127.0.0.1, proxied routes) and export AETHER_NATS_URL "
                          "(every node, comma-separated) and AETHER_NATS_REPLICAS=N; it provides the faults "
                          "kill, pause and partition")
    run.add_argument("--faults", metavar="NAMES",
                     help="inject these faults (comma-separated) while writers run (ES-FAULT-001), "
                          "from the cluster, the PostgreSQL server (kill, pause) or a fault plugin loaded with "
                          "-p after --")
    run.add_argument("--fault-seed", type=int, metavar="N", help="seed of the fault schedule (default: random)")
    run.add_argument("--fault-report", metavar="PATH",
                     help="write the fault run (faults injected, unknown outcomes, verdict) as JSON")
    run.add_argument("--postgres-server", action="store_true",
                     help="start a local PostgreSQL (127.0.0.1, free port, temp cluster) and export "
                          "AETHER_POSTGRES_DSN; it provides the faults kill and pause")
    run.add_argument("-v", "--verbose", action="store_true", help="pytest's long output: tracebacks and every test")
    run.add_argument("pytest_args", nargs="*", metavar="-- PYTEST_ARGS", help="passed on to pytest (after --)")
    commands.add_parser("requirements", help="print the requirement catalog as Markdown")
    return parser


def _writable_file(option: str, path: str) -> Path:
    """Check a report path before the run, so a typo costs one line, not a finished run."""
    target = Path(path).expanduser().absolute()
    if target.is_dir():
        raise UsageError(f"{option} {path}: is a directory, not a file")
    blocking = next((p for p in (target.parent, *target.parent.parents) if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise UsageError(f"{option} {path}: {blocking} is not a directory")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=target.parent):
            pass
        if target.exists():
            with open(target, "a", encoding="utf-8"):
                pass
    except NotADirectoryError:
        raise UsageError(f"{option} {path}: {target.parent} is not a directory") from None
    except OSError as error:
        raise UsageError(f"{option} {path}: not writable ({error.strerror or error})") from None
    return target


@contextlib.contextmanager
def _nats_server(wanted: bool) -> Iterator[None]:
    if not wanted:
        yield
        return
    from .nats_server import NatsServer, NatsServerError

    try:
        server = NatsServer()
        server.__enter__()
    except (NatsServerError, OSError) as error:
        raise UsageError(f"--nats-server: {str(error).splitlines()[0]}") from None
    try:
        os.environ["AETHER_NATS_URL"] = server.url
        print(f"aether-conformance: started nats-server at {server.url} (pid {server.pid})", file=sys.stderr)
        yield
    finally:
        server.__exit__(None, None, None)


@contextlib.contextmanager
def _postgres_server(wanted: bool, faults: str | None) -> Iterator[list[object]]:
    """Start the server when asked; yields the pytest plugins that offer its faults (with --faults)."""
    if not wanted:
        yield []
        return
    from .postgres_server import DSN_ENV, PostgresFaultPlugin, PostgresServer, PostgresServerError

    try:
        server = PostgresServer()
        server.__enter__()
    except (PostgresServerError, OSError) as error:  # e.g. no PostgreSQL here: one line saying how to get it
        raise UsageError(f"--postgres-server: {str(error).splitlines()[0]}") from None
    try:
        os.environ[DSN_ENV] = server.dsn
        print(f"aether-conformance: started PostgreSQL at {server.dsn} (pid {server.pid})", file=sys.stderr)
        yield [PostgresFaultPlugin(server)] if faults else []
    finally:
        server.__exit__(None, None, None)


_signalled: list[str] = []  # the signal that interrupted the run, if one did


@contextlib.contextmanager
def _signals_as_interrupt() -> Iterator[None]:
    """SIGINT and SIGTERM (a CI runner cancelling the job) end the run alike: reports, cleanup, exit 2."""

    def interrupt(signum: int, frame: object) -> None:
        _signalled.append(signal.Signals(signum).name)
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _no_process_left_behind() -> Iterator[None]:
    """Every process the run started, however deep, is stopped when it ends.

    The CLI becomes a child subreaper (Linux): a store's grandchild orphaned by a crashed worker,
    or one that escaped into its own session, is re-parented to this process instead of init, so
    it can still be found and stopped here.  Processes that were already running when the run
    began are spared: when ``main()`` is called inside a larger program (a test session with its
    own servers), those are not the run's to stop.
    """
    was_subreaper = _set_subreaper(True)
    already_running = set(_descendants(os.getpid()))
    try:
        yield
    finally:
        _stop_descendants(spare=already_running)
        if not was_subreaper:
            _set_subreaper(False)


def _set_subreaper(on: bool) -> bool:
    """Set this process's child-subreaper flag (Linux); whether it was set before."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_CHILD_SUBREAPER, PR_GET_CHILD_SUBREAPER = 36, 37
        before = ctypes.c_int(0)
        libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(before), 0, 0, 0)
        libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0)
        return bool(before.value)
    except (OSError, AttributeError):  # no prctl: direct children are still found below
        return False


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, pending = [], [root]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def _stop_descendants(spare: set[int], grace: float = 3.0) -> None:
    me = os.getpid()
    stopped: set[int] = set()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = [pid for pid in _descendants(me) if pid not in spare]
        if not alive:
            break
        for pid in alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        stopped.update(alive)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _reap(stopped):
            time.sleep(0.05)
    _reap(stopped)


def _reap(pids: set[int]) -> bool:
    """Collect those of ``pids`` that exited (only those: other children are not ours to wait for).

    True while one of them still runs.
    """
    running = False
    for pid in pids:
        try:
            exited, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # collected already, or a grandchild whose own parent collects it
            exited = 0 if _is_running(pid) else pid
        running = running or exited == 0
    return running


def _is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _import_path_behind_dependencies() -> None:
    # `python -m aether_conformance.cli` puts the current directory first on sys.path; a pytest.py
    # or hypothesis/ there would then replace the kit's own dependencies.  Keep it, but last.
    here = os.getcwd()
    sys.path[:] = [entry for entry in sys.path if entry not in ("", here)]
    ensure_import_path(here)


@contextlib.contextmanager
def _nats_cluster(size: int | None) -> Iterator[list[object]]:
    """Start the cluster when asked; yields the pytest plugins that offer its faults."""
    if size is None:
        yield []
        return
    from .nats_cluster import ClusterFaultPlugin, NatsCluster

    with NatsCluster(size) as cluster:
        os.environ["AETHER_NATS_URL"] = cluster.url
        os.environ["AETHER_NATS_REPLICAS"] = str(size)
        print(f"aether-conformance: started a {size}-node nats-server cluster at {cluster.url} "
              f"(pids {', '.join(str(node.pid) for node in cluster.nodes)})", file=sys.stderr)
        yield [ClusterFaultPlugin(cluster)]


def _check_fault_args(args: argparse.Namespace) -> None:
    if args.nats_server and args.nats_cluster is not None:
        raise UsageError("--nats-server and --nats-cluster are exclusive: one server or one cluster")
    if args.faults is not None and args.postgres_server and args.nats_cluster is not None:
        raise UsageError("--faults with both --postgres-server and --nats-cluster: faults hit one backend; "
                         "certify against one of them")
    if args.nats_cluster is not None and not 2 <= args.nats_cluster <= 5:
        raise UsageError(f"--nats-cluster: must be a number of nodes from 2 to 5 (a cluster, within JetStream's "
                         f"replica limit; --nats-server for one), got {args.nats_cluster}")
    if args.faults is not None:
        from .faults import parse_fault_names

        try:
            parse_fault_names(args.faults)
        except ValueError as error:
            raise UsageError(f"--{error}") from None
    elif args.fault_seed is not None or args.fault_report:
        raise UsageError("--fault-seed and --fault-report need --faults")
    if args.timeout is None:
        args.timeout = FAULT_TIMEOUT if args.faults else DEFAULT_TIMEOUT


def run(args: argparse.Namespace) -> int:
    _check_fault_args(args)
    _import_path_behind_dependencies()
    extra_outputs = {name: _writable_file(f"--{name.replace('_', '-')}", getattr(args, name))
                     for name in ("json_report", "junitxml", "badge") if getattr(args, name)}
    artifacts = Path(args.artifacts).expanduser().absolute()
    _writable_file("--artifacts", str(artifacts / "report.json"))
    if artifacts.exists() and not artifacts.is_dir():
        raise UsageError(f"--artifacts {args.artifacts}: exists and is not a directory")
    with _no_process_left_behind(), _signals_as_interrupt():
        try:
            with _nats_server(args.nats_server), \
                    _postgres_server(args.postgres_server, args.faults) as postgres_plugins, \
                    _nats_cluster(args.nats_cluster) as cluster_plugins:
                args.plugins = [*postgres_plugins, *cluster_plugins]
                try:
                    # Preflight: one handle, made and closed in a child process, so a store that cannot
                    # even be reached is a one-line usage error rather than a hundred identical test
                    # errors, and one that ends or hangs its process cannot end or hang the CLI.
                    check_store(args.store, args.timeout)
                except StoreLoadError as error:
                    raise UsageError(str(error)) from None
                return _certify(args, artifacts, extra_outputs)
        except KeyboardInterrupt:
            # Interrupted outside the suite's own handling (before it started, or by a second signal
            # as it ended: a CI runner signals the process and its group alike).  What the suite found
            # is kept, marked incomplete; without it, a report that says nothing was certified.
            report = _suite_report(artifacts) if getattr(args, "suite_started", False) else None
            reason = f"the run was interrupted ({', '.join(_signalled) or 'SIGINT'})"
            if report is None or not report["tests"]["ran"]:
                started = "as the suite started" if getattr(args, "suite_started", False) else "before the suite started"
                report = _unfinished_report(args, f"the run was interrupted {started}")
            else:
                report["complete"], report["conformant"], report["incompleteReason"] = False, False, reason
            _write_outputs(report, artifacts, extra_outputs)
            print("aether-conformance: interrupted; nothing is certified", file=sys.stderr)
            return EXIT_USAGE


def _uses_xdist(pytest_args: list[str]) -> bool:
    return any(arg in ("-n", "--numprocesses", "--dist") or arg.startswith(("-n", "--numprocesses=", "--dist="))
               for arg in pytest_args) or "no:xdist" in pytest_args


def _certify(args: argparse.Namespace, artifacts: Path, extra_outputs: dict[str, Path]) -> int:
    # Imported here, once run() has put the working directory behind the kit's dependencies.
    import pytest

    from .faults import fault_summary_lines

    if artifacts.exists():
        shutil.rmtree(artifacts)
    artifacts.mkdir(parents=True)
    args.suite_started = True  # from here on, a report.json in artifacts is this run's
    json_report, junit = artifacts / "report.json", artifacts / "junit.xml"
    pytest_args = [
        "--pyargs", "aether_conformance.suite",
        "--aether-store", args.store,
        "--aether-profile", args.profile,
        "--aether-timeout", repr(args.timeout),
        "--aether-json-report", str(json_report),
        "--aether-artifacts", str(artifacts),
        "--junitxml", str(junit), "-o", "junit_family=xunit2", "-o", "junit_suite_name=aether-conformance",
        # The suite lives in the installed package: do not pick up the caller's pytest config,
        # nor a conftest.py of the project it runs in.
        "-c", os.devnull, "--rootdir", os.getcwd(), "--noconftest",
        "-p", "no:cacheprovider",
        # The suite uses no bare asserts, so nothing needs rewriting; rewriting every module of
        # every plugin's package anyway cost 2.5 s a run (no bytecode cache: -p no:cacheprovider).
        "--assert=plain",
    ]
    pytest_args += ["-v"] if args.verbose else ["-qq", "--tb=no", "-rN", "--no-header"]
    plugins = getattr(args, "plugins", [])
    if plugins and not _uses_xdist(args.pytest_args):
        # The fault provider lives in this process (the cluster's proxies, the server's process): so
        # does the suite.
        pytest_args += ["-p", "no:xdist"]
    elif not _uses_xdist(args.pytest_args):
        # One xdist worker runs the suite, so a store that kills its process (os._exit, a segfault,
        # the OOM killer) fails the test that was running instead of ending the run.
        pytest_args += ["-n", "1", "--max-worker-restart", "10"]
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        pytest_args += ["-p", "aether_conformance.plugin", "-p", "xdist.plugin"]
    for capability in args.capability:
        pytest_args += ["--aether-capability", capability]
    if args.faults:
        pytest_args += ["--aether-faults", args.faults]
        if args.fault_seed is not None:
            pytest_args += ["--aether-fault-seed", str(args.fault_seed)]
    # Python puts the working directory first on the import path of `python -c` (how xdist starts
    # its workers): a pytest.py there would replace pytest.  Workers drop the setting again
    # (plugin.py), so that a store's own child processes run as usual.
    os.environ["PYTHONSAFEPATH"] = os.environ["AETHER_CONFORMANCE_SAFEPATH"] = "1"
    # Scratch space of the run (pytest's basetemp, the stores' temporary files) is removed on every
    # exit path: by this process, or by the watchdog when this process is killed outright (SIGKILL).
    watchdog = Watchdog()
    try:
        with tempfile.TemporaryDirectory(prefix="aether-conformance-") as scratch:
            watchdog.remove_on_death(scratch)
            os.environ["TMPDIR"] = scratch
            tempfile.tempdir = None
            status = pytest.main(pytest_args + ["--basetemp", str(Path(scratch) / "pytest")] + args.pytest_args,
                                 plugins=plugins)
    finally:
        watchdog.close()
    report = _suite_report(artifacts)
    interrupted = bool(_signalled) or status == pytest.ExitCode.INTERNAL_ERROR
    # A worker the store killed before it said what it collected leaves "ran" at 0; the failures
    # charged for its deaths are still failures found.
    found_failure = report is not None and any(r["outcome"] in ("failed", "blocked") for r in report["requirements"])
    if report is None or not (report["tests"]["ran"] or found_failure):
        if interrupted:  # before any conformance test finished (while the first actors were planted, say)
            reason = f"the run was interrupted ({', '.join(_signalled) or 'internal error'}) before any test finished"
        elif status not in (pytest.ExitCode.NO_TESTS_COLLECTED, pytest.ExitCode.OK):
            reason = f"the run did not complete (pytest exit code {int(status)})"
        else:
            reason = "no conformance test ran"
        if report is None:
            report = _unfinished_report(args, reason)
        report["incompleteReason"] = reason
        _write_outputs(report, artifacts, extra_outputs)
        print(f"aether-conformance: {reason}; nothing is certified", file=sys.stderr)
        return EXIT_USAGE
    if interrupted and report["complete"]:
        report["complete"], report["conformant"] = False, False  # stopped after the last test had run
        report["incompleteReason"] = f"the run was interrupted ({', '.join(_signalled) or 'internal error'})"
    summary = _write_outputs(report, artifacts, extra_outputs)
    print()
    print(summary if args.verbose else markdown_summary(report, compact=True))
    for line in fault_summary_lines(report.get("faults", [])):
        print(line)
    if args.fault_report and report.get("faults"):
        Path(args.fault_report).write_text(json.dumps(report["faults"], indent=2) + "\n", encoding="utf-8")
    print(f"Artifacts: {artifacts} (report.html, report.json, junit.xml, badge.json, summary.md)")
    if interrupted:
        return EXIT_USAGE
    state = verdict(report)
    if state == "CONFORMANT":
        return EXIT_CONFORMANT
    must_broken = any(r["level"] == "MUST" and r["outcome"] in ("failed", "blocked") for r in report["requirements"])
    if must_broken:
        return EXIT_NOT_CONFORMANT
    if state == "INCOMPLETE":
        print(f"aether-conformance: incomplete run, nothing is certified: {report['incompleteReason']}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_NOT_CONFORMANT


def _suite_report(artifacts: Path) -> dict | None:
    path = artifacts / "report.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _histories(artifacts: Path) -> list[dict]:
    """The histories concurrency tests kept (artifacts/histories/*.json), for the HTML timelines."""
    found = []
    for path in sorted((artifacts / "histories").glob("*.json")):
        try:
            found.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):  # a history cut short by a crash is left out, not fatal
            continue
    return found


def _unfinished_report(args: argparse.Namespace, reason: str) -> dict:
    from .report import build_report, summarise

    return build_report(args.store, args.profile, frozenset(args.capability), summarise([]), incomplete_reason=reason)


def _write_outputs(report: dict, artifacts: Path, extra_outputs: dict[str, Path]) -> str:
    """report.json, badge.json and summary.md in the artifacts directory, and the copies asked for."""
    from .report import annotate_junit, write_json_report

    artifacts.mkdir(parents=True, exist_ok=True)
    write_json_report(report, artifacts / "report.json")
    if (artifacts / "junit.xml").exists():
        annotate_junit(artifacts / "junit.xml", report)
    (artifacts / "badge.json").write_text(json.dumps(badge(report), indent=2) + "\n", encoding="utf-8")
    summary = markdown_summary(report)
    (artifacts / "summary.md").write_text(summary, encoding="utf-8")
    try:
        page = render_html(report, _histories(artifacts))
    except ValueError:  # a history cut short (a crash mid-write): the page without timelines
        page = render_html(report, [])
    (artifacts / "report.html").write_text(page, encoding="utf-8")
    for name, target in extra_outputs.items():
        source = {"json_report": artifacts / "report.json", "junitxml": artifacts / "junit.xml",
                  "badge": artifacts / "badge.json"}[name]
        if source.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    return summary


# Set in the environment of the CLI process a supervisor started (see _supervise).
SUPERVISED_ENV = "AETHER_CONFORMANCE_SUPERVISED"


def _suite_runs_here(args: argparse.Namespace) -> bool:
    """Whether the suite would run in this process rather than on an xdist worker: a fault run
    (its provider lives here) or a run with xdist turned off (``-p no:xdist``, ``-n 0``)."""
    extra = args.pytest_args
    off = "no:xdist" in extra or "-n0" in extra or "--numprocesses=0" in extra or any(
        flag in ("-n", "--numprocesses") and value == "0" for flag, value in zip(extra, extra[1:]))
    fault_run = bool(args.faults) and (args.nats_cluster is not None or args.postgres_server)
    return off or (fault_run and not _uses_xdist(extra))


def _supervise(argv: list[str], args: argparse.Namespace) -> int:
    """Run the CLI in a child process and judge how it ended.

    Where the suite runs in the CLI's own process, a store that ends the process (os._exit(0), a
    segfault, a signal) would end the CLI with whatever status it chose, without a report.  The
    supervisor outlives it: a child that ended while the report on disk still says the run is in
    progress failed the test that was running (artifacts/running.json names it), exit 1.
    """
    started = time.time() - 1  # file times may be coarser than this clock
    # The child's temporary files go in here, removed below whatever ended the child.
    scratch = tempfile.mkdtemp(prefix="aether-conformance-supervised-")
    watchdog = Watchdog()
    watchdog.remove_on_death(scratch)
    # Its own process group: a Ctrl-C at the terminal reaches the child once, forwarded below,
    # not twice (a second interrupt would cut short the report it is writing).
    child = subprocess.Popen([sys.executable, "-m", "aether_conformance.cli", *argv],
                             env={**os.environ, SUPERVISED_ENV: "1", "TMPDIR": scratch}, process_group=0)

    def forward(signum: int, frame: object) -> None:
        child.send_signal(signum)  # the child writes its incomplete report and exits 2

    previous = {signum: signal.signal(signum, forward) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        with _no_process_left_behind():
            code = child.wait()
            _let_watchdogs_finish(spare=watchdog.pid)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        shutil.rmtree(scratch, ignore_errors=True)
        watchdog.close()
    artifacts = Path(args.artifacts).expanduser().absolute()
    report_path = artifacts / "report.json"
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
        written = report_path.stat().st_mtime >= started
    except (OSError, ValueError):
        report, written = None, False
    if written and report.get("incompleteReason") != IN_PROGRESS and code >= 0:
        return code  # the child finished: its report and exit status stand
    if not written and code in (EXIT_NOT_CONFORMANT, EXIT_USAGE):
        return code  # it stopped before the suite started (a usage error, said on stderr)
    return _report_ended_run(args, artifacts, code)


def _let_watchdogs_finish(spare: int, timeout: float = 30.0) -> None:
    """A launcher's watchdog orphaned by a dead child is cleaning up (servers, directories): let it
    finish before what is left is stopped; the timeout only bounds a hang.  The supervisor's own
    watchdog (``spare``) lives on until the supervisor ends."""
    from .watchdog import WATCHDOG_MARK

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        watching = []
        for pid in _descendants(os.getpid()):
            if pid == spare:
                continue
            try:
                if WATCHDOG_MARK.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    watching.append(pid)
            except OSError:
                continue
        if not watching:
            return
        time.sleep(0.05)


def _report_ended_run(args: argparse.Namespace, artifacts: Path, code: int) -> int:
    """The report of a run whose process the store ended: the running test failed, nothing certified."""
    from .report import CaseOutcome, build_report, summarise

    how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
    try:
        running = json.loads((artifacts / RUNNING_FILE).read_text(encoding="utf-8"))
        (artifacts / RUNNING_FILE).unlink()
    except (OSError, ValueError):
        running = None
    reason = f"the run's process {how} before the run finished"
    outcomes = []
    if running and running.get("requirements"):
        ids, test = running["requirements"], running["nodeid"]
        outcomes.append(CaseOutcome(nodeid=test, requirements=ids, outcome="failed", messages=[
            f"{', '.join(ids)}: the store ended the test process while {test.rpartition('::')[2]} was running: "
            f"the process {how}; a store must never exit, crash or kill its caller"]))
        reason += f", during {test}"
    report = build_report(args.store, args.profile, frozenset(args.capability), summarise(outcomes),
                          incomplete_reason=reason)
    extra_outputs = {name: Path(getattr(args, name)).expanduser().absolute()
                     for name in ("json_report", "junitxml", "badge") if getattr(args, name)}
    _write_outputs(report, artifacts, extra_outputs)
    print(markdown_summary(report, compact=True))
    print(f"aether-conformance: {reason}; nothing is certified", file=sys.stderr)
    return EXIT_NOT_CONFORMANT


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    full_argv, extra = list(argv), []
    if "--" in argv:  # everything after -- belongs to pytest, whatever it looks like
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    args = _parser().parse_args(argv)
    if args.command == "requirements":
        sys.stdout.write(markdown_table())
        return EXIT_CONFORMANT
    args.pytest_args = list(args.pytest_args) + extra
    if _suite_runs_here(args) and not os.environ.get(SUPERVISED_ENV):
        return _supervise(full_argv, args)
    try:
        return run(args)
    except UsageError as error:
        print(f"aether-conformance: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
