"""Several Node replicas (--cluster) on one PostgreSQL database serve one model as one fleet.

Real processes on loopback ports and a real PostgreSQL: places and the goal are shared, reports
taken by any replica are aggregated exactly once, and `kill -9` of the leader (the replica that
runs the cycles' timers) loses no acknowledged report; another replica takes over and closes the
cycle on time.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime

import numpy as np
import pytest
import requests
import sqlalchemy

from fedgrid_plans import tensors
from fedgrid_server.config import normalize_database_url
from tests.support.api_client import HttpApi
from tests.support.databases import database_backends, make_database_url
from tests.support.models import logistic_regression, random_diff, unique_name
from tests.support.node_process import leader_of, start_node

from .test_cycle_engine import cycles_of, host, report, request_place, wait_for
from .test_cycle_liveness import authenticate, held_until_reported

POSTGRES = [backend for backend in database_backends() if backend == "postgresql"]


@pytest.fixture
def replicas(tmp_path_factory):
    """Start replicas of one deployment (one database, one admin token)."""
    started = []
    database = make_database_url("postgresql", tmp_path_factory.mktemp("db"))

    def start(count, *extra):
        for _ in range(count):
            node = start_node(data_dir=tmp_path_factory.mktemp("replica"),
                              database_url=database.url,
                              extra_args=["--cluster", "--id", "deployment", *extra])
            started.append(node)
        return started[-count:]

    start.database = database
    yield start
    for node in started:
        node.stop()
    database.drop()


def stored_diffs(database):
    engine = sqlalchemy.create_engine(normalize_database_url(database.url))
    try:
        with engine.connect() as connection:
            return connection.execute(sqlalchemy.text("SELECT count(*) FROM report_diffs")).scalar()
    finally:
        engine.dispose()


def expected_average(reports):
    """FedAvg of (seed, num_samples) reports: checkpoint 1 minus the weighted mean diff."""
    start = logistic_regression()[1]
    decoded = tensors.decode(start)
    total = sum(n for _, n in reports)
    result = {}
    for name, value in decoded.items():
        mean = sum(tensors.decode(tensors.encode(random_diff(start, seed)))[name].astype(np.float64) * n
                   for seed, n in reports) / total
        result[name] = (value - mean).astype(value.dtype)
    return result


def checkpoint(api, name, number):
    answer = api.call("retrieve-model", {"name": name, "checkpoint": number}, admin=True)
    assert answer.status == 200, answer.body
    return tensors.decode(answer.content)


def assert_close(actual, expected):
    assert sorted(actual) == sorted(expected)
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("backend", POSTGRES)
def test_three_replicas_share_places_goal_and_one_running_sum(replicas, backend):
    nodes = replicas(3)
    apis = [HttpApi(node.url, node.admin_token) for node in nodes]
    wait_for(lambda: leader_of(nodes), "a leader")
    name = unique_name("fleet")
    host(apis[1], name, max_diffs=6, max_workers=6, cycle_length=600, strategy={"name": "fedavg"})
    # A replica that has not served the model yet lists its open cycle with its figures.
    assert cycles_of(apis[0], name)[0]["accepted"] == 0
    # Places taken through every replica count against the same cycle: six, then it is full.
    places = [request_place(apis[i % 3], name) for i in range(6)]
    assert all(body["status"] == "accepted" and body["cycle"] == 1 for _, body in places)
    turned_away = [request_place(apis[i], name)[1] for i in range(3)]
    # Every replica's listing counts what all of them did.
    assert all(cycles_of(api, name)[0]["accepted"] == 6 and cycles_of(api, name)[0]["requests"] == 9
               for api in apis)
    assert [body.get("reason") for body in turned_away] == ["cycle_full"] * 3, turned_away
    # Reports go to every replica; the sixth reaches the goal wherever it lands.
    reports = []
    for index, (worker, body) in enumerate(places):
        answer = report(apis[(index + 1) % 3], worker, body, seed=index, num_samples=5 + index)
        assert answer.status == 200, answer.body
        reports.append((index, 5 + index))
        # A report is one report: sent again to another replica, it is a duplicate.
        again = report(apis[index % 3], worker, body, seed=index)
        assert (again.status, again.error_code) == (409, "report_duplicate")
    closed = wait_for(lambda: [c for c in cycles_of(apis[0], name) if c["status"] == "completed"],
                      "cycle 1 to close at its goal")
    assert closed[0]["reported"] == 6 and closed[0]["reason"] == "goal"
    assert_close(checkpoint(apis[2], name, 2), expected_average(reports))
    # Every replica hands out places in cycle 2 now.
    for api in apis:
        assert request_place(api, name)[1]["cycle"] == 2
    # A dashboard login on one replica holds on the others (the balancer may switch replicas).
    browser = requests.Session()
    logged_in = browser.post(nodes[0].url + "/dashboard/login",
                             data={"token": nodes[0].admin_token}, timeout=10)
    assert logged_in.status_code == 200 and name in logged_in.text
    for node in nodes[1:]:
        elsewhere = browser.cookies.get_dict()
        page = requests.get(node.url + "/", cookies=elsewhere, timeout=10)
        assert page.status_code == 200 and name in page.text
    for node in nodes:
        assert "Traceback" not in node.log()


@pytest.mark.parametrize("backend", POSTGRES)
def test_kill_9_of_the_leader_loses_no_report_and_the_cycle_closes_on_time(replicas, backend):
    nodes = replicas(3)
    leader = wait_for(lambda: leader_of(nodes), "a leader")
    followers = [node for node in nodes if node is not leader]
    apis = {node.port: HttpApi(node.url, node.admin_token) for node in nodes}
    name = unique_name("takeover")
    # A deadline the takeover must meet: the cycle closes with what was reported (quorum 2).
    host(apis[leader.port], name, max_diffs=10, min_diffs=2, cycle_length=12,
         strategy={"name": "fedavg"})
    places = [request_place(apis[node.port], name) for node in (leader, *followers, leader)]
    assert all(body["status"] == "accepted" for _, body in places)
    acknowledged = []
    for index, node in enumerate((leader, followers[0])):
        worker, body = places[index]
        answer = report(apis[node.port], worker, body, seed=10 + index, num_samples=3 + index)
        assert answer.status == 200, answer.body
        acknowledged.append((10 + index, 3 + index))
    deadline = datetime.fromisoformat(places[0][1]["deadline"].rstrip("Z"))
    leader.kill()
    survivor = apis[followers[0].port]
    # A survivor takes the lead and keeps serving: a report after the kill is taken too.
    worker, body = places[2]
    answer = report(apis[followers[1].port], worker, body, seed=12, num_samples=5)
    assert answer.status == 200, answer.body
    acknowledged.append((12, 5))
    wait_for(lambda: leader_of(followers), "a surviving replica to take the lead")
    # Reports acknowledged before the kill are stored: resending one is a duplicate.
    again = report(survivor, *places[0], seed=10)
    assert (again.status, again.error_code) == (409, "report_duplicate")
    closed = wait_for(lambda: [c for c in cycles_of(survivor, name) if c["status"] == "completed"],
                      "cycle 1 to close at its deadline")[0]
    assert closed["reported"] == 3 and closed["reason"] == "deadline"
    closed_at = datetime.fromisoformat(closed["closed_at"].rstrip("Z"))
    # On time: the takeover was long done by the deadline; the new leader's watcher closes the
    # cycle when it is due (a bound with room for a loaded machine, far below a cycle length).
    assert (closed_at - deadline).total_seconds() < 5.0, (closed_at, deadline)
    assert_close(checkpoint(survivor, name, 2), expected_average(acknowledged))
    # The fourth place's device reports too late: its cycle is closed.
    late = report(survivor, *places[3], seed=13)
    assert late.error_code == "cycle_closed"
    # A replica stages a diff before the decision: the refused one was taken back, and the
    # closed cycle's diffs are gone with it. A resend of an acknowledged report stages nothing.
    again = report(survivor, *places[0], seed=10)
    assert again.error_code == "report_duplicate"
    assert stored_diffs(replicas.database) == 0
    for node in followers:
        assert "Traceback" not in node.log()


def test_cluster_refuses_to_start_without_the_shared_admin_token(tmp_path):
    # (SQLite is refused too: test_cluster_membership.py.)
    for args, words in (
        (["--cluster", "--database-url", "postgresql://u:p@127.0.0.1:1/x"],
         "--cluster needs the admin token"),
    ):
        started = subprocess.run([sys.executable, "-m", "fedgrid_node", "--data-dir", str(tmp_path),
                                  *args], capture_output=True, text=True, timeout=60,
                                 env={"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)})
        assert started.returncode != 0
        assert words in started.stderr and "Traceback" not in started.stderr, started.stderr


@pytest.mark.parametrize("backend", POSTGRES)
def test_a_long_poll_held_by_one_replica_is_answered_when_another_closes_the_cycle(replicas,
                                                                                   backend):
    first, second = replicas(2)
    apis = [HttpApi(node.url, node.admin_token) for node in (first, second)]
    name = unique_name("longpoll")
    host(apis[0], name, max_diffs=1, max_workers=1, cycle_length=600)
    place = request_place(apis[0], name)
    # Held on the second replica (the cycle is full); its figures, read on the first, count it.
    answer = held_until_reported(apis[1], name, authenticate(apis[1], name), requests=2,
                                 place=place, reporter=apis[0])
    assert answer["status"] == "accepted" and answer["cycle"] == 2


@pytest.mark.parametrize("backend", POSTGRES)
def test_pause_and_stop_on_a_follower_govern_the_whole_fleet(replicas, backend):
    nodes = replicas(2)
    leader = wait_for(lambda: leader_of(nodes), "a leader")
    follower = next(node for node in nodes if node is not leader)
    on_leader = HttpApi(leader.url, leader.admin_token)
    on_follower = HttpApi(follower.url, follower.admin_token)
    name = unique_name("control")
    host(on_leader, name, max_diffs=3, min_diffs=1, cycle_length=600)
    places = [request_place(api, name) for api in (on_leader, on_follower)]
    assert report(on_leader, *places[0], seed=21, num_samples=4).status == 200
    paused = on_follower.call("pause-process", {"name": name, "version": "1"}, admin=True)
    assert paused.status == 200, paused.body
    # The leader sees the pause: nobody new gets a place there.
    assert request_place(on_leader, name)[1]["reason"] == "process_paused"
    # A device already holding a place may still report, through either replica.
    assert report(on_follower, *places[1], seed=22, num_samples=6).status == 200
    stopped = on_follower.call("stop-process", {"name": name, "version": "1"}, admin=True)
    assert stopped.status == 200, stopped.body
    closed = cycles_of(on_leader, name)[0]
    assert closed["status"] == "completed" and closed["reported"] == 2
    assert closed["num_samples"] == 10
    # The follower closed it with the report the leader had folded and the one it had stored.
    assert_close(checkpoint(on_leader, name, 2), expected_average([(21, 4), (22, 6)]))
    assert request_place(on_leader, name)[1]["reason"] == "training_stopped"
    for node in nodes:
        assert "Traceback" not in node.log()
