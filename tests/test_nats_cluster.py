"""The cluster launcher (aether_conformance/nats_cluster.py) against real nats-server processes.

Every fault is checked against the cluster's own view of itself: leaders
from /jsz, routes from /routez, process state from /proc.  Waits poll the
cluster until a generous deadline: they bound hangs, never measure speed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

nats = pytest.importorskip("nats", reason="the [jetstream] extra is not installed")

import nats.errors  # noqa: E402
import nats.js.errors  # noqa: E402
from nats.js.api import StreamConfig  # noqa: E402

from aether_conformance.nats_cluster import ClusterFaults, NatsCluster, NatsClusterError  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SETTLE = 90.0  # seconds: an upper bound on elections and reconnects on a loaded machine


def wait_until(condition, what: str, timeout: float = SETTLE):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout}s: {what}")


def process_state(pid: int) -> str:
    # The third field of /proc/PID/stat: R, S, T (stopped), Z ...
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return process_state(pid) != "Z"


def make_stream(cluster: NatsCluster, name: str, replicas: int, messages: int = 1) -> None:
    async def main() -> None:
        nc = await nats.connect(cluster.urls)
        try:
            js = nc.jetstream(timeout=20)
            await js.add_stream(StreamConfig(name=name, subjects=[f"{name.lower()}.>"], num_replicas=replicas))
            for n in range(messages):
                deadline = time.monotonic() + SETTLE
                while True:  # a new replicated stream answers once its leader is elected
                    try:
                        await js.publish(f"{name.lower()}.x", str(n).encode(), headers={"Nats-Msg-Id": f"{name}-{n}"})
                        break
                    except (nats.errors.NoRespondersError, nats.js.errors.NoStreamResponseError):
                        if time.monotonic() > deadline:
                            raise
                        await asyncio.sleep(0.2)
        finally:
            await nc.close()

    asyncio.run(main())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with NatsCluster(3, base_dir=tmp_path_factory.mktemp("cluster")) as running:
        make_stream(running, "PROBE", 3, messages=5)
        yield running


@pytest.fixture(autouse=True)
def healthy_again(request):
    yield
    if "cluster" in request.fixturenames:
        cluster = request.getfixturevalue("cluster")
        for node in cluster.nodes:
            if node.paused:
                cluster.resume(node)
            elif not node.running:
                cluster.restart(node)
        cluster.heal()
        cluster.wait_healthy(SETTLE)


def test_a_cluster_starts_as_a_full_mesh_with_one_meta_leader_and_leaves_nothing_behind(tmp_path):
    cluster = NatsCluster(3, base_dir=tmp_path)
    with cluster:
        pids = [node.pid for node in cluster.nodes]
        assert cluster.url == ",".join(f"nats://127.0.0.1:{node.port}" for node in cluster.nodes)
        assert len({p for n in cluster.nodes for p in (n.port, n.monitor_port, n.route_port)}) == 9
        for node in cluster.nodes:
            assert node.route_peers() == {n.name for n in cluster.nodes} - {node.name}
        leaders = {cluster.meta_leader_seen_by(node) for node in cluster.nodes}
        assert len(leaders) == 1 and leaders <= {n.name for n in cluster.nodes}
        base = cluster._base
        assert base.is_dir()
    assert not any(alive(pid) for pid in pids)
    assert not base.exists() and list(tmp_path.iterdir()) == []


def test_killing_the_stream_leader_elects_another_and_a_restart_rejoins_with_its_data(cluster):
    leader = cluster.stream_leader("PROBE")
    pid = cluster.node(leader).pid
    cluster.kill(leader)
    assert not alive(pid)
    survivors = [n for n in cluster.nodes if n.name != leader]
    new = wait_until(lambda: (s := cluster.stream_leader("PROBE")) not in (None, leader) and s,
                     "a new leader of PROBE among the survivors")
    assert new in {n.name for n in survivors}
    for node in survivors:
        wait_until(lambda: leader not in node.route_peers(), f"{node.name} dropping its routes to the killed node")
    store_dir = cluster.node(leader).store_dir
    node = cluster.restart(leader)
    assert node.pid != pid
    cluster.wait_healthy(SETTLE)
    assert node.monitor("/jsz")["config"]["store_dir"] == str(store_dir / "jetstream")  # same store directory

    def messages() -> int:
        jsz = node.monitor("/jsz?accounts=true&streams=true") or {}
        return {s["name"]: s["state"]["messages"] for a in jsz.get("account_details") or ()
                for s in a.get("stream_detail") or ()}.get("PROBE", -1)

    # A SIGKILL can cost the node the writes nats-server had not yet handed to the OS; its
    # peers give them back as it catches up, so it rejoins with every message.
    wait_until(lambda: messages() == 5, f"{node.name} holding PROBE's 5 messages again")


def test_a_paused_node_is_stopped_its_routes_drop_and_it_comes_back_on_resume(cluster):
    target = cluster.nodes[1]
    cluster.pause(target)
    assert process_state(target.pid) == "T"
    others = [n for n in cluster.nodes if n is not target]
    for node in others:
        wait_until(lambda: target.name not in node.route_peers(), f"{node.name} dropping its routes to the paused node")
    cluster.resume(target)
    assert process_state(target.pid) != "T"
    cluster.wait_healthy(SETTLE)
    assert target.route_peers() == {n.name for n in others}


def test_a_partitioned_node_keeps_running_without_routes_and_loses_its_leadership(cluster):
    leader = cluster.node(cluster.stream_leader("PROBE"))
    cluster.partition(leader)
    others = [n for n in cluster.nodes if n is not leader]
    assert leader.running and not leader.paused
    wait_until(lambda: leader.route_peers() == set(), "the partitioned node having no routes")
    for node in others:
        wait_until(lambda: node.route_peers() == {n.name for n in others} - {node.name},
                   f"{node.name} routed to the majority only")
    wait_until(lambda: any(cluster.meta_leader_seen_by(n) for n in others)
               and (jsz := others[0].monitor("/jsz?accounts=true&streams=true"))
               and any(s["cluster"].get("leader") in {n.name for n in others}
                       for a in jsz["account_details"] for s in a["stream_detail"] if s["name"] == "PROBE"),
               "the majority electing a leader of PROBE")
    cluster.heal(leader)
    cluster.wait_healthy(SETTLE)
    assert leader.route_peers() == {n.name for n in others}


def test_a_node_that_cannot_come_back_is_an_error_naming_it_and_its_log(cluster):
    node = cluster.nodes[2]
    cluster.kill(node)
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", node.port))  # the node's own client port: it cannot listen
    squatter.listen()
    try:
        with pytest.raises(NatsClusterError) as raised:
            cluster.restart(node, timeout=60)
    finally:
        squatter.close()
    message = str(raised.value)
    assert f"cluster node {node.name}" in message and str(node.log_path) in message


def test_the_fault_provider_hits_the_busiest_stream_leader_and_reports_unreplicated_streams(cluster):
    faults = ClusterFaults(cluster, recovery_timeout=SETTLE)
    assert faults.preconditions() == []
    make_stream(cluster, "LONELY", 1)
    problems = faults.preconditions()
    assert problems == [p for p in problems if p.startswith("stream LONELY has 1 replica(s) on a 3-node cluster")]
    assert len(problems) == 1
    kinds = {kind.name: kind for kind in faults.fault_kinds()}
    assert set(kinds) == {"kill", "pause", "partition"}
    leader = cluster.stream_leader("PROBE")
    target = kinds["pause"].inject()
    assert target.startswith(f"{leader} (leader of stream PROBE") and cluster.node(leader).paused
    kinds["pause"].recover()  # waits until the cluster is healthy, or raises
    assert not cluster.node(leader).paused
    environment = faults.environment()
    assert environment["version"].startswith("v2.") and environment["nodes"] == 3


def connect_raw_clients(node, count: int) -> list[socket.socket]:
    """``count`` bare NATS clients of ``node`` (CONNECT, then PING answered): what /connz counts."""
    clients = []
    for _ in range(count):
        client = socket.create_connection(("127.0.0.1", node.port), timeout=SETTLE)
        clients.append(client)
        reader = client.makefile("rb")
        assert reader.readline().startswith(b"INFO ")
        client.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n')
        assert reader.readline() == b"PONG\r\n"
    return clients


def test_a_partition_cuts_off_the_follower_with_the_fewest_clients_so_the_leader_keeps_saving(cluster):
    leader = cluster.node(cluster.stream_leader("PROBE"))
    crowded, lonely = [n for n in cluster.nodes if n is not leader]
    # The leader has the fewest clients of all: the old rule, which cut off the leader when it had
    # clients, would pick it; the follower with fewer clients than the other is the one to cut off.
    clients = [*connect_raw_clients(leader, 1), *connect_raw_clients(crowded, 3), *connect_raw_clients(lonely, 2)]
    try:
        faults = ClusterFaults(cluster, recovery_timeout=SETTLE)
        partition = next(kind for kind in faults.fault_kinds() if kind.name == "partition")
        target = partition.inject()
        assert target == f"{lonely.name} (follower, 2 of 6 clients; the leader of stream PROBE is {leader.name})"
        wait_until(lambda: not lonely.route_peers(), f"{lonely.name} losing its routes")
        assert cluster.stream_leader("PROBE") == leader.name
        partition.recover()  # waits until the cluster is healthy, or raises
        assert lonely.route_peers() == {leader.name, crowded.name}
    finally:
        for client in clients:
            client.close()


def test_python_m_runs_a_cluster_until_sigterm_and_cleans_up():
    process = subprocess.Popen([sys.executable, "-m", "aether_conformance.nats_cluster", "--nodes", "3"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("NATS_URL=") and line.count("nats://127.0.0.1:") == 3, line
        node_lines = [process.stderr.readline() for _ in range(3)]
        pids = [int(text.split(" pid ")[1].split()[0]) for text in node_lines]
        logs = [Path(text.rsplit(" log ", 1)[1].strip()) for text in node_lines]
        assert all(alive(pid) for pid in pids)
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not any(alive(pid) for pid in pids)
    assert not any(log.parent.exists() for log in logs)


def test_bad_sizes_are_refused_naming_the_field():
    for size in (1, 0, -1, True, 2.5):
        with pytest.raises(ValueError, match="size: must be a number of nodes of at least 2"):
            NatsCluster(size)


def test_a_launcher_killed_outright_leaves_no_node_and_no_directory_behind():
    script = (
        "import sys, time\n"
        "from aether_conformance.nats_cluster import NatsCluster\n"
        "cluster = NatsCluster(3).start()\n"
        "print(cluster._base, *[node.pid for node in cluster.nodes], flush=True)\n"
        "time.sleep(600)\n"
    )
    launcher = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        base, *pids = launcher.stdout.readline().split()
        assert len(pids) == 3 and all(alive(int(pid)) for pid in pids)
        launcher.kill()  # SIGKILL: no atexit, no finally
        launcher.wait(30)
        wait_until(lambda: not any(alive(int(pid)) for pid in pids), "the watchdog killing the nodes", 60)
        wait_until(lambda: not Path(base).exists(), "the watchdog removing the cluster's directory", 60)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
