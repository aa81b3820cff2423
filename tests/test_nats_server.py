"""The nats-server launcher, against real nats-server processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time

import pytest

from aether_conformance import nats_server as launcher
from aether_conformance.nats_server import NatsServer, NatsServerError
from aether_conformance.ports import free_port

nats = pytest.importorskip("nats", reason="the [jetstream] extra is not installed")


def server_info(port: int) -> dict:
    """The INFO line a NATS server sends first to every client."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            assert chunk, "server closed the connection before sending INFO"
            data += chunk
    verb, _, body = data.decode().partition(" ")
    assert verb == "INFO"
    return json.loads(body)


def refuses(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def pid_alive(pid: int) -> bool:
    """Running (a zombie no init has reaped yet counts as gone)."""
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False


def test_start_serves_jetstream_on_loopback_only_and_stop_ends_the_process():
    with NatsServer() as server:
        info = server_info(server.port)
        assert info["jetstream"] is True
        assert info["host"] == "127.0.0.1"
        assert server.url == f"nats://127.0.0.1:{server.port}"
        pid = server.pid
        assert pid is not None and pid_alive(pid)
        server.stop()
        assert not server.running and server.pid is None
        assert not pid_alive(pid)
        assert refuses(server.port)


def test_max_payload_reaches_the_server():
    with NatsServer(max_payload=4096) as server:
        assert server_info(server.port)["max_payload"] == 4096


def test_max_payload_must_be_positive():
    with pytest.raises(ValueError, match="max_payload"):
        NatsServer(max_payload=0)


async def _publish_and_count(url: str, stream: str, publish: bool) -> int:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        if publish:
            await js.add_stream(name=stream, subjects=["persist.>"], storage="file")
            await js.publish("persist.one", b"kept across a crash")
        return (await js.stream_info(stream)).state.messages
    finally:
        await nc.close()


def test_kill_then_restart_keeps_port_store_and_acknowledged_messages():
    with NatsServer() as server:
        port, store_dir, old_pid = server.port, server.store_dir, server.pid
        assert asyncio.run(_publish_and_count(server.url, "PERSIST", publish=True)) == 1
        server.kill()
        assert not server.running and not pid_alive(old_pid)
        assert refuses(port)
        server.restart()
        assert (server.port, server.store_dir) == (port, store_dir)
        assert server.pid != old_pid
        assert asyncio.run(_publish_and_count(server.url, "PERSIST", publish=False)) == 1


def test_restart_of_a_running_server_stops_it_first():
    with NatsServer() as server:
        old_pid = server.pid
        server.restart()
        assert server.running and server.pid != old_pid
        assert not pid_alive(old_pid)


def test_close_removes_a_temporary_store_but_never_a_given_one(tmp_path):
    with NatsServer() as temporary:
        owned = temporary.store_dir
        assert owned.is_dir()
    assert not owned.exists()
    given = tmp_path / "store"
    with NatsServer(given) as server:
        assert server.store_dir == given
    assert (given / "jetstream").is_dir()


def test_starting_twice_is_refused():
    with NatsServer() as server:
        with pytest.raises(NatsServerError, match="already running"):
            server.start()


def test_a_port_in_use_is_reported_with_the_server_log():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = NatsServer(port=busy.getsockname()[1])
        try:
            with pytest.raises(NatsServerError, match="exited with code") as caught:
                server.start()
            assert "address already in use" in str(caught.value)
        finally:
            server.close()


def test_missing_binary_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setattr(sysconfig, "get_path", lambda name: str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NatsServerError, match=r"install the \[jetstream\] extra"):
        launcher.find_nats_server()


def test_module_main_prints_the_url_and_stops_the_server_on_sigterm():
    process = subprocess.Popen(
        [sys.executable, "-m", "aether_conformance.nats_server"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("NATS_URL=nats://127.0.0.1:"), line + process.stderr.read()
        port = int(line.rsplit(":", 1)[1])
        assert server_info(port)["jetstream"] is True
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        assert refuses(port)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_launcher_killed_outright_leaves_no_server_and_no_directory_behind():
    script = (
        "import time\n"
        "from aether_conformance.nats_server import NatsServer\n"
        "server = NatsServer().start()\n"
        "print(server.pid, server._run_dir, server.store_dir, flush=True)\n"
        "time.sleep(600)\n"
    )
    launcher = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pid, *directories = launcher.stdout.readline().split()
        assert pid_alive(int(pid)) and all(os.path.isdir(d) for d in directories)
        launcher.kill()  # SIGKILL: no atexit, no finally
        launcher.wait(30)
        deadline = time.monotonic() + 60  # bounds a hang only
        while pid_alive(int(pid)) or any(os.path.exists(d) for d in directories):
            assert time.monotonic() < deadline, f"the watchdog left pid {pid} or {directories} behind"
            time.sleep(0.1)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()


def test_free_ports_are_never_handed_out_twice():
    # Ports bound to 0 and released come back: a thousand draws from the ephemeral range repeat
    # one almost surely, and a cluster node given one port twice (client and route) does not start.
    ports = [free_port() for _ in range(1000)]
    assert len(set(ports)) == len(ports)
