"""A fleet in participate() trains through a real HAProxy in front of three Node replicas on one
PostgreSQL database, and the leading replica is killed (kill -9) in the middle of the run.

Every report a device was told was stored must be in exactly one cycle's count: the cycles'
`reported` figures add up to the devices' own lists of acknowledged reports, cycle by cycle. The
fleet must finish all its cycles through the survivors, and the run's checkpoints keep improving
the model.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import requests

from fedgrid import Admin, Client
from tests.support.databases import database_backends, make_database_url
from tests.support.load_balancer import LoadBalancer
from tests.support.node_process import start_node

DEVICES = 12
MAX_DIFFS = 4
NUM_CYCLES = 8
KILL_AT_CYCLE = 3  # the leader dies once this cycle is open
JOIN_SECONDS = 300  # a bound for the whole run, not a speed requirement


def leader(nodes):
    for node in nodes:
        try:
            if requests.get(f"{node.url}/status", timeout=5).json()["replica"]["leader"]:
                return node
        except requests.RequestException:
            continue
    return None


def wait_until(condition, what, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.parametrize("backend", [b for b in database_backends() if b == "postgresql"])
def test_a_fleet_trains_through_the_balancer_and_survives_the_leaders_kill_9(
        tmp_path_factory, host, digits, backend):
    database = make_database_url("postgresql", tmp_path_factory.mktemp("db"))
    nodes = [start_node(data_dir=tmp_path_factory.mktemp("replica"), database_url=database.url,
                        extra_args=["--cluster", "--id", "deployment"]) for _ in range(3)]
    balancer = LoadBalancer([node.url for node in nodes], work_dir=tmp_path_factory.mktemp("lb"))
    clients, jobs = [], []
    try:
        balancer.wait_ready()
        first_leader = wait_until(lambda: leader(nodes), "a leader")
        front = SimpleNamespace(url=balancer.url, admin_token=nodes[0].admin_token)
        name = host(node=front, server_config={"max_diffs": MAX_DIFFS, "cycle_length": 600,
                                               "num_cycles": NUM_CYCLES})
        features, labels = digits
        order = np.random.default_rng(0).permutation(len(features))
        shards = [(features[part], labels[part]) for part in np.array_split(order, DEVICES)]
        reports: list[list[dict] | None] = [None] * DEVICES
        failures: list[tuple[int, BaseException]] = []
        # Half the fleet over HTTP, half over WebSocket, all through the balancer.
        clients = [Client(balancer.url if i % 2 == 0 else balancer.ws_url) for i in range(DEVICES)]
        jobs = [client.new_job(name) for client in clients]

        def device(index: int) -> None:
            try:
                reports[index] = jobs[index].participate(shards[index])
            except BaseException as exc:  # noqa: BLE001 (reported by the test thread below)
                failures.append((index, exc))

        threads = [threading.Thread(target=device, args=(i,), daemon=True) for i in range(DEVICES)]
        for thread in threads:
            thread.start()
        admin = Admin(balancer.url, front.admin_token)
        wait_until(lambda: any(c["sequence"] == KILL_AT_CYCLE for c in admin.cycles(name)),
                   f"cycle {KILL_AT_CYCLE} to open")
        first_leader.kill()
        survivors = [node for node in nodes if node is not first_leader]
        wait_until(lambda: leader(survivors), "a surviving replica to take the lead")
        deadline = time.monotonic() + JOIN_SECONDS
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        cycles = admin.cycles(name)
        table = "\n".join(f"  cycle {c['sequence']}: {c['status']} ({c.get('reason')}), reported "
                          f"{c.get('reported')}, dropped {c.get('dropped')}" for c in cycles)
        assert not any(thread.is_alive() for thread in threads), table
        assert not failures, (failures[:3], table)
        assert [c["sequence"] for c in cycles] == list(range(1, NUM_CYCLES + 1)), table
        assert all(c["status"] == "completed" for c in cycles), table
        # Each acknowledged report counted once, in the cycle the device reported it to.
        acknowledged = Counter(r["cycle"] for device_reports in reports for r in device_reports
                               if r["task"] == "train")
        assert {c["sequence"]: c["reported"] for c in cycles} == dict(acknowledged), table
        accuracy = [c["client_metrics"].get("accuracy") for c in cycles]
        assert accuracy[-1] > accuracy[0], accuracy
        for node in survivors:
            assert "Traceback" not in node.log()
    finally:
        for job in jobs:
            job.stop()
        for client in clients:
            client.close()
        balancer.stop()
        for node in nodes:
            node.stop()
        database.drop()
