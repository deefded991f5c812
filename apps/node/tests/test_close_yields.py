"""A cycle's close never hands work to the thread pool while its session holds SQLite's write
lock. SQLite waits for a lock in C, blocking the whole gevent hub: if the close yielded with the
lock held, another greenlet's write would freeze the Node until `busy_timeout` (30 s) and then
fail with "database is locked". The in-process Node here records, at every hand-off to the pool
during a close, whether any of its SQLite connections is inside a write transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from fedgrid_node.app import create_app
from fedgrid_node.config import NodeConfig
from fedgrid_node.cycles import checkpoints, cycle_aggregate, off_hub

from .test_late_reports import ADMIN, place, report


@pytest.fixture
def node(tmp_path, monkeypatch):
    app = create_app(NodeConfig(data_dir=tmp_path, admin_token="admin-token"))
    checked_out: set = set()
    engine = app.extensions["fedgrid"].db.engine
    event.listen(engine, "checkout", lambda dbapi, record, proxy: checked_out.add(dbapi))
    event.listen(engine, "checkin", lambda dbapi, record: checked_out.discard(dbapi))
    writing_at_handoff: list[bool] = []

    def recording(function, *args, **kwargs):
        writing_at_handoff.append(any(c.in_transaction for c in checked_out))
        return off_hub.run_off_hub(function, *args, **kwargs)

    for module in (checkpoints, cycle_aggregate):
        monkeypatch.setattr(module, "run_off_hub", recording)
    yield app.test_client(), writing_at_handoff
    app.extensions["fedgrid"].engine.stop()


def host_and_report(client, server_config: dict) -> str:
    name, worker, key = place(client, **server_config)
    answer = report(client, worker, key)
    assert answer.status_code == 200, answer.json
    return name


@pytest.mark.parametrize("server_config", [
    {"max_diffs": 5, "min_diffs": 1},
    {"max_diffs": 5, "min_diffs": 1, "aggregator": "median"},
], ids=["mean", "median"])
def test_a_stop_closes_without_yielding_under_the_write_lock(node, server_config):
    client, writing_at_handoff = node
    name = host_and_report(client, {**server_config, "cycle_length": 600})
    stopped = client.post("/model-centric/stop-process", headers=ADMIN, json={"name": name})
    assert stopped.status_code == 200 and stopped.json["cycle"]["status"] == "completed", stopped.json
    assert writing_at_handoff and not any(writing_at_handoff), writing_at_handoff


@pytest.mark.parametrize("server_config", [
    {"max_diffs": 1},
    # DP-FedAvg: the accountant's ε (after the close's summary is written) must not yield either.
    {"max_diffs": 1, "num_cycles": 3,
     "differential_privacy": {"noise_multiplier": 1.0, "population": 100, "target_epsilon": 50}},
], ids=["mean", "dp"])
def test_a_goal_closes_without_yielding_under_the_write_lock(node, server_config):
    client, writing_at_handoff = node
    host_and_report(client, {**server_config, "cycle_length": 600})
    assert writing_at_handoff and not any(writing_at_handoff), writing_at_handoff
