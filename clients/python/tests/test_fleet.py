"""A fleet of SDK devices in participate() against a real Node, on each database backend.

The docs' example settings (max_diffs 5, cycle_length 600) with 20 devices: a device turned away
(cycle full, already reported) long-polls, so the Node hands it the next free place as soon as there
is one. Every cycle must then close at its goal; one that waited out its 600 s deadline means
devices were asleep while the Node waited for reports.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from fedgrid import Admin, Client
from tests.support.databases import database_backends

from .fleet import Fleet

DEVICES = 20
MAX_DIFFS = 5
NUM_CYCLES = 20
# A bound for the whole run, not a speed requirement: at the goal the 20 cycles take seconds; a
# fleet that sleeps out even one 600 s deadline cannot finish within it.
JOIN_SECONDS = 300


@pytest.mark.parametrize("backend", database_backends())
def test_a_fleet_in_participate_closes_every_cycle_at_its_goal(node_factory, host, digits,
                                                               backend):
    node = node_factory(backend)
    name = host(node=node, server_config={"max_diffs": MAX_DIFFS, "cycle_length": 600,
                                          "num_cycles": NUM_CYCLES})
    fleet = Fleet(name, digits, DEVICES, url=node.url, ws_url=node.ws_url)
    try:
        fleet.start()
        stuck = fleet.join(JOIN_SECONDS)
        with Admin(node.url, node.admin_token) as admin:
            cycles = admin.cycles(name)
        table = "\n".join(
            f"  cycle {c['sequence']}: {c['status']} ({c.get('reason')}), reported "
            f"{c.get('reported')}, accepted {c.get('accepted')}, dropped {c.get('dropped')}, "
            f"rejected {c.get('rejected')}, {c['started_at']} .. {c['closed_at']}"
            for c in cycles)
        assert not stuck, (f"{len(stuck)} devices still in participate() after {JOIN_SECONDS} s "
                           f"({', '.join(stuck)}); cycles so far:\n{table}\n"
                           f"the Node's log ends:\n{node.log()[-4000:]}")
        assert not fleet.failures, (f"devices raised: {fleet.failures[:3]} "
                                    f"({len(fleet.failures)} in all)\ncycles:\n{table}\n"
                                    f"the Node's log ends:\n{node.log()[-4000:]}")
    finally:
        fleet.stop()

    assert [c["sequence"] for c in cycles] == list(range(1, NUM_CYCLES + 1)), table
    assert all(c["status"] == "completed" for c in cycles), table
    # None waited out its deadline: each closed at its goal of MAX_DIFFS reports.
    assert [c["reason"] for c in cycles] == ["goal"] * NUM_CYCLES, table
    assert all(c["reported"] == MAX_DIFFS for c in cycles), table
    made = fleet.made()
    assert len(made) == NUM_CYCLES * MAX_DIFFS
    assert sorted({r["cycle"] for r in made}) == list(range(1, NUM_CYCLES + 1))
    with Admin(node.url, node.admin_token) as admin:
        assert admin.checkpoints(name)["latest"] == NUM_CYCLES + 1
    assert "Traceback" not in node.log(), node.log()


@pytest.mark.parametrize("backend", database_backends())
def test_places_held_by_dead_devices_go_to_the_fleet_when_their_leases_end(node_factory, host,
                                                                          digits, backend):
    """Three devices take places in cycle 1 and are never heard from again (killed after their
    cycle-request). Their leases end and the long-polling fleet gets the places: cycle 1 still
    closes at its goal, long before its deadline."""
    node = node_factory(backend)
    cycles_wanted, lease = 3, 3
    # max_workers = max_diffs: the dead devices' places are really missing until handed on.
    name = host(node=node, server_config={"max_diffs": MAX_DIFFS, "max_workers": MAX_DIFFS,
                                          "cycle_length": 600, "num_cycles": cycles_wanted,
                                          "assignment_lease": lease})
    dead = Client(node.url)
    for _ in range(3):
        dead.new_job(name).request()  # an Assignment: accepted (a refusal raises)
    dead.close()
    features, labels = digits
    shards = np.array_split(np.arange(len(features)), 8)
    clients = [Client(node.url if i % 2 == 0 else node.ws_url) for i in range(8)]
    jobs = [client.new_job(name) for client in clients]
    failures: list[BaseException] = []

    def device(index: int) -> None:
        try:
            jobs[index].participate((features[shards[index]], labels[shards[index]]))
        except BaseException as exc:  # noqa: BLE001 (reported below)
            failures.append(exc)

    threads = [threading.Thread(target=device, args=(i,), daemon=True) for i in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=JOIN_SECONDS)
        assert not any(thread.is_alive() for thread in threads), node.log()[-4000:]
        assert not failures, failures[:3]
    finally:
        for job in jobs:
            job.stop()
        for client in clients:
            client.close()
    with Admin(node.url, node.admin_token) as admin:
        cycles = admin.cycles(name)
    assert [(c["status"], c["reason"], c["reported"]) for c in cycles] == \
        [("completed", "goal", MAX_DIFFS)] * cycles_wanted
    assert cycles[0]["expired"] == 3, cycles[0]  # the dead devices' places, handed on
    assert "Traceback" not in node.log()
