"""A fleet in participate() trains through a real HAProxy in front of three Node replicas on one
PostgreSQL database, and the leading replica is killed (kill -9) in the middle of the run.

Every report a device was told was stored must be in exactly one cycle's count: the cycles'
`reported` figures add up to the devices' own lists of acknowledged reports, cycle by cycle. The
fleet must finish all its cycles through the survivors, and the model must improve.
"""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import pytest

from fedgrid import Admin
from fedgrid_server.testing import wait_for
from tests.support.databases import database_backends, make_database_url
from tests.support.load_balancer import LoadBalancer
from tests.support.node_process import leader_of, start_node

from .fleet import Fleet

DEVICES = 12
MAX_DIFFS = 4
NUM_CYCLES = 8
KILL_AT_CYCLE = 3  # the leader dies once this cycle is open
JOIN_SECONDS = 300  # a bound for the whole run, not a speed requirement


@pytest.mark.parametrize("backend", [b for b in database_backends() if b == "postgresql"])
def test_a_fleet_trains_through_the_balancer_and_survives_the_leaders_kill_9(
        tmp_path_factory, host, digits, backend):
    database = make_database_url("postgresql", tmp_path_factory.mktemp("db"))
    nodes = [start_node(data_dir=tmp_path_factory.mktemp("replica"), database_url=database.url,
                        extra_args=["--cluster", "--id", "deployment"]) for _ in range(3)]
    balancer = LoadBalancer([node.url for node in nodes], work_dir=tmp_path_factory.mktemp("lb"))
    fleet = None
    try:
        balancer.wait_ready()
        first_leader = wait_for(lambda: leader_of(nodes), what="a leader")
        front = SimpleNamespace(url=balancer.url, admin_token=nodes[0].admin_token)
        name = host(node=front, server_config={"max_diffs": MAX_DIFFS, "cycle_length": 600,
                                               "num_cycles": NUM_CYCLES})
        # Half the fleet over HTTP, half over WebSocket, all through the balancer.
        fleet = Fleet(name, digits, DEVICES, url=balancer.url, ws_url=balancer.ws_url)
        fleet.start()
        admin = Admin(balancer.url, front.admin_token)
        wait_for(lambda: any(c["sequence"] == KILL_AT_CYCLE for c in admin.cycles(name)),
                 timeout=120, what=f"cycle {KILL_AT_CYCLE} to open")
        first_leader.kill()
        survivors = [node for node in nodes if node is not first_leader]
        wait_for(lambda: leader_of(survivors), what="a surviving replica to take the lead")
        stuck = fleet.join(JOIN_SECONDS)
        cycles = admin.cycles(name)
        table = "\n".join(f"  cycle {c['sequence']}: {c['status']} ({c.get('reason')}), reported "
                          f"{c.get('reported')}, dropped {c.get('dropped')}" for c in cycles)
        assert not stuck, table
        assert not fleet.failures, (fleet.failures[:3], table)
        assert [c["sequence"] for c in cycles] == list(range(1, NUM_CYCLES + 1)), table
        assert all(c["status"] == "completed" for c in cycles), table
        # Each acknowledged report counted once, in the cycle the device reported it to.
        acknowledged = Counter(r["cycle"] for r in fleet.made() if r["task"] == "train")
        assert {c["sequence"]: c["reported"] for c in cycles} == dict(acknowledged), table
        accuracy = [c["client_metrics"].get("accuracy") for c in cycles]
        assert accuracy[-1] > accuracy[0], accuracy
        for node in survivors:
            assert "Traceback" not in node.log()
    finally:
        if fleet is not None:
            fleet.stop()
        balancer.stop()
        for node in nodes:
            node.stop()
        database.drop()
