"""Replicas of one Node (`--cluster`: the same --id, address and PostgreSQL database) join a real
Network as one Node: started at once, they end with one node token, all heartbeat, and the
Network counts them apart. Real processes on loopback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests
from sqlalchemy import create_engine, text

from fedgrid_network.testing import start_network, wait_for
from fedgrid_node.config import default_replica_id
from fedgrid_server.config import normalize_database_url
from fedgrid_server.testing import free_port, server_env
from tests.support.databases import database_backends, make_database_url
from tests.support.node_process import start_node, wait_healthy

BALANCER = "http://balancer.example:8080"  # the replicas' one public address


def cluster_args(network) -> list[str]:
    return ["--cluster", "--network", network.url, "--id", "alice", "--address", BALANCER,
            f"--network-secret={network.secret}"]


def replicas(network) -> dict:
    answer = requests.get(f"{network.url}/nodes/alice", timeout=10)
    return answer.json().get("replicas") if answer.status_code == 200 else None


def stored_tokens(database_url: str) -> list:
    """The node tokens the replicas keep in their shared database."""
    engine = create_engine(normalize_database_url(database_url))
    try:
        with engine.connect() as connection:
            return connection.execute(text(
                "SELECT node_id, node_token FROM network_membership_tokens")).all()
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", [b for b in database_backends() if b == "postgresql"])
def test_three_replicas_started_at_once_are_one_node(backend, tmp_path):
    database = make_database_url(backend, tmp_path)
    network = start_network(data_dir=tmp_path / "network", heartbeat_interval=0.3,
                            offline_after=3)
    nodes = []
    try:
        # All three start at once, on an empty database: they upgrade its schema and join
        # concurrently.
        nodes = [start_node(data_dir=tmp_path / f"replica-{i}", database_url=database.url,
                            extra_args=cluster_args(network), wait=False) for i in range(3)]
        for node in nodes:
            wait_healthy(node)
        wait_for(lambda: (replicas(network) or {}).get("online") == 3, what="3 replicas online")
        listed = network.nodes()
        assert set(listed) == {"alice"} and listed["alice"]["address"] == BALANCER
        assert listed["alice"]["status"] == "online"
        # Each replica is named <hostname>-<pid> by default.
        host = default_replica_id().rsplit("-", 1)[0]
        members = replicas(network)["members"]
        assert sorted(m["replica"] for m in members) == sorted(
            f"{host}-{node.process.pid}" for node in nodes)
        # Each replica's dashboard names it.
        for node in nodes:
            page = requests.get(f"{node.url}/", timeout=10).text
            assert f'<span id="network-replica">{host}-{node.process.pid}</span>' in page
        # One token, in the shared database; no replica was refused on the way.
        stored = stored_tokens(database.url)
        assert [row.node_id for row in stored] == ["alice"]
        for node in nodes:
            assert "refused" not in node.log() and "Traceback" not in node.log(), node.log()
            assert stored[0].node_token not in node.log()
            assert not (node.data_dir / "network-membership.json").exists()
        # Every replica keeps heartbeating: each one's last heartbeat moves on.
        first = {m["replica"]: m["last_heartbeat"] for m in members}
        wait_for(lambda: all(m["last_heartbeat"] != first[m["replica"]]
                             for m in replicas(network)["members"]), what="3 heartbeats more")

        # kill -9 of one: once its heartbeats stop counting, the Node is online on the other two.
        nodes[0].kill()
        wait_for(lambda: replicas(network)["online"] == 2, what="2 replicas online")
        assert network.nodes()["alice"]["status"] == "online"
        assert replicas(network)["total"] == 3  # the killed one never said goodbye
        # A clean stop of another says goodbye for itself only: at once, 1 replica online.
        nodes[1].stop()
        after = replicas(network)
        assert (after["online"], after["total"]) == (1, 2)
        assert network.nodes()["alice"]["status"] == "online"
        assert "Traceback" not in network.log()
    finally:
        for node in nodes:
            node.stop()
        network.stop()
        database.drop()


def test_cluster_refuses_an_embedded_sqlite_database(tmp_path):
    env = server_env(os.environ, drop=("GRID_ADMIN_TOKEN", "FEDGRID_CLUSTER"))
    finished = subprocess.run(
        [sys.executable, "-m", "fedgrid_node", "--cluster", "--host", "127.0.0.1",
         "--port", str(free_port()), "--data-dir", str(tmp_path), "--admin-token=t"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert finished.returncode != 0
    assert finished.stderr.splitlines() == [
        "fedgrid-node: --cluster needs PostgreSQL: replicas share one database"]
    assert not (tmp_path / "node.db").exists()


@pytest.mark.parametrize("backend", [b for b in database_backends() if b == "postgresql"])
def test_replicas_join_again_with_one_new_token_when_the_network_forgot_them(backend, tmp_path):
    database = make_database_url(backend, tmp_path)
    network = start_network(data_dir=tmp_path / "network", heartbeat_interval=0.3,
                            offline_after=3)
    nodes = []
    try:
        nodes = [start_node(data_dir=tmp_path / f"replica-{i}", database_url=database.url,
                            extra_args=cluster_args(network), wait=False) for i in range(2)]
        for node in nodes:
            wait_healthy(node)
        wait_for(lambda: (replicas(network) or {}).get("online") == 2, what="2 replicas online")
        before = stored_tokens(database.url)
        # The Network loses its registry (its database is deleted) and comes back on its port.
        network.stop()
        (tmp_path / "network" / "network.db").unlink()
        network = start_network(data_dir=tmp_path / "network", port=network.port,
                                heartbeat_interval=0.3, offline_after=3)
        # One replica's heartbeat hears node_unknown and joins afresh (a new token, stored); the
        # other's old token is refused, and it joins again with the stored one.
        wait_for(lambda: (replicas(network) or {}).get("online") == 2, what="2 replicas again")
        after = stored_tokens(database.url)
        assert len(after) == 1 and after != before
        for node in nodes:
            assert " ERROR " not in node.log(), node.log()
    finally:
        for node in nodes:
            node.stop()
        network.stop()
        database.drop()
