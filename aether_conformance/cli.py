"""``aether-conformance``: certify a store, print the verdict, write the reports.

    aether-conformance run MODULE:ATTR [--capability NAME]... [--profile quick|default|thorough]
                       [--json-report PATH] [--junitxml PATH] [--badge PATH] [--timeout S]
                       [--nats-server] [--postgres-server] [-- extra pytest args]
    aether-conformance requirements          print the requirement catalog (Markdown)

Exit codes: 0 the store is conformant (every applicable MUST passed);
1 it is not; 2 it could not be loaded, the arguments are wrong, or no
conformance test ran.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .driver import StoreDriver, StoreLoadError, ensure_import_path
from .profiles import PROFILES
from .report import badge, markdown_summary
from .requirements import CAPABILITIES, markdown_table

EXIT_CONFORMANT, EXIT_NOT_CONFORMANT, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aether-conformance", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the conformance suite against a store")
    run.add_argument("store", metavar="MODULE:ATTR", help="zero-argument factory returning a store handle")
    run.add_argument("--capability", action="append", default=[], metavar="NAME",
                     choices=[name for name in CAPABILITIES if name != "snapshots"],
                     help="declare a capability (repeatable): multiprocess")
    run.add_argument("--profile", choices=list(PROFILES), default="default")
    run.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS", help="per store call (default 10)")
    run.add_argument("--json-report", metavar="PATH", help="per-requirement JSON report (schemas/report.schema.json)")
    run.add_argument("--junitxml", metavar="PATH", help="JUnit XML, one test case per conformance test")
    run.add_argument("--badge", metavar="PATH", help="shields.io endpoint badge JSON")
    run.add_argument("--nats-server", action="store_true",
                     help="start a local nats-server (127.0.0.1, free port, temp store) and export AETHER_NATS_URL")
    run.add_argument("--postgres-server", action="store_true",
                     help="start a local PostgreSQL (127.0.0.1, free port, temp cluster) and export AETHER_POSTGRES_DSN")
    run.add_argument("pytest_args", nargs="*", metavar="-- PYTEST_ARGS", help="passed on to pytest (after --)")
    commands.add_parser("requirements", help="print the requirement catalog as Markdown")
    return parser


@contextlib.contextmanager
def _nats_server(wanted: bool) -> Iterator[None]:
    if not wanted:
        yield
        return
    from .nats_server import NatsServer

    with NatsServer() as server:
        os.environ["AETHER_NATS_URL"] = server.url
        print(f"aether-conformance: started nats-server at {server.url} (pid {server.pid})", file=sys.stderr)
        yield


@contextlib.contextmanager
def _postgres_server(wanted: bool) -> Iterator[None]:
    if not wanted:
        yield
        return
    from .postgres_server import DSN_ENV, PostgresServer, PostgresServerError

    try:
        with PostgresServer() as server:
            os.environ[DSN_ENV] = server.dsn
            print(f"aether-conformance: started PostgreSQL at {server.dsn} (pid {server.pid})", file=sys.stderr)
            yield
    except PostgresServerError as error:  # e.g. no PostgreSQL here: one line saying how to get it
        print(f"aether-conformance: {error}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


def run(args: argparse.Namespace) -> int:
    ensure_import_path(os.getcwd())  # like `python -m`: the store's module may live in the current directory
    with _nats_server(args.nats_server), _postgres_server(args.postgres_server):
        try:
            # Preflight: one handle, made and closed here, so a store that cannot even be reached
            # is a one-line usage error rather than a hundred identical test errors.
            preflight = StoreDriver(args.store, timeout=args.timeout)
            preflight.new_handle()
            preflight.close()
        except StoreLoadError as error:
            print(f"aether-conformance: {error}", file=sys.stderr)
            return EXIT_USAGE
        return _certify(args)


def _certify(args: argparse.Namespace) -> int:
    import pytest

    with tempfile.TemporaryDirectory(prefix="aether-conformance-") as scratch:
        json_report = args.json_report or str(Path(scratch) / "report.json")
        pytest_args = [
            "--pyargs", "aether_conformance.suite",
            "--aether-store", args.store,
            "--aether-profile", args.profile,
            "--aether-timeout", str(args.timeout),
            "--aether-json-report", json_report,
            # The suite lives in the installed package: do not pick up the caller's pytest config.
            "-c", os.devnull, "--rootdir", os.getcwd(),
            "-p", "no:cacheprovider",
            # the CLI imports the kit before pytest starts; the suite uses no bare asserts to rewrite
            "-W", "ignore::pytest.PytestAssertRewriteWarning",
            "-q",
        ]
        if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
            pytest_args += ["-p", "aether_conformance.plugin"]  # not loaded from its entry point then
        for capability in args.capability:
            pytest_args += ["--aether-capability", capability]
        if args.junitxml:
            pytest_args += ["--junitxml", args.junitxml]
        status = pytest.main(pytest_args + args.pytest_args)
        if not Path(json_report).exists():
            if status in (pytest.ExitCode.NO_TESTS_COLLECTED, pytest.ExitCode.OK):
                print("aether-conformance: no conformance test ran; nothing is certified", file=sys.stderr)
            else:
                print(f"aether-conformance: the run did not complete (pytest exit code {int(status)})", file=sys.stderr)
            return EXIT_USAGE
        report = json.loads(Path(json_report).read_text(encoding="utf-8"))
    print()
    print(markdown_summary(report))
    if args.badge:
        Path(args.badge).write_text(json.dumps(badge(report), indent=2) + "\n", encoding="utf-8")
    if status in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR):
        return EXIT_USAGE
    return EXIT_CONFORMANT if report["conformant"] else EXIT_NOT_CONFORMANT


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:  # everything after -- belongs to pytest, whatever it looks like
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    args = _parser().parse_args(argv)
    if args.command == "requirements":
        sys.stdout.write(markdown_table())
        return EXIT_CONFORMANT
    args.pytest_args = list(args.pytest_args) + extra
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
