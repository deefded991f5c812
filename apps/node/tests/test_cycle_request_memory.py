"""cycle-requests answered from memory on a single Node: the rejections' counts, the cached
worker and model lookups and the cooldown must say what the database says, through bursts,
deletes, re-hosting and `kill -9`."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.support.api_client import HttpApi
from tests.support.databases import database_backends
from tests.support.models import logistic_regression, unique_name

from .test_cycle_engine import cycles_of, host, report, request_place


@pytest.fixture
def api(shared_node):
    client = HttpApi(shared_node.url, shared_node.admin_token)
    yield client
    client.close()


def metric(node, line_start: str) -> float:
    text = requests.get(f"{node.url}/metrics", timeout=10,
                        headers={"Authorization": f"Bearer {node.admin_token}"}).text
    values = [line.rsplit(" ", 1)[1] for line in text.splitlines() if line.startswith(line_start)]
    assert len(values) == 1, (line_start, text)
    return float(values[0])


def burst(node, worker: str, name: str, count: int, clients: int = 8) -> list[dict]:
    """`count` cycle-requests of one worker from `clients` threads at once."""
    def ask(_: int) -> dict:
        return requests.post(f"{node.url}/model-centric/cycle-request", timeout=30,
                             json={"worker_id": worker, "model": name, "version": "1"}).json()

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(ask, range(count)))


@pytest.mark.parametrize("backend", database_backends())
def test_a_burst_of_rejections_is_counted_everywhere_and_survives_kill_9(node_factory, backend):
    node = node_factory(backend)
    api = HttpApi(node.url, node.admin_token)
    name = unique_name()
    host(api, name, max_diffs=1, max_workers=1, cycle_length=600)
    request_place(api, name)  # takes the only place
    turned_away, _ = request_place(api, name)
    answers = burst(node, turned_away, name, 60)
    assert {answer["reason"] for answer in answers} == {"cycle_full"}
    figures = cycles_of(api, name)[0]
    assert figures["requests"] == 62 and figures["rejected"] == {"cycle_full": 61}
    labels = f'model="{name}",version="1"'
    assert metric(node, f'fedgrid_cycle_requests_rejected_total{{{labels},reason="cycle_full"}}') == 61
    # Every answered rejection was committed before its answer: a crash loses none of them.
    node.kill()
    node = node.restart()
    try:
        api = HttpApi(node.url, node.admin_token)
        figures = cycles_of(api, name)[0]
        assert figures["requests"] == 62 and figures["rejected"] == {"cycle_full": 61}
        # ...and counting goes on from there.
        assert request_place(api, name, turned_away)[1]["reason"] == "cycle_full"
        assert cycles_of(api, name)[0]["rejected"] == {"cycle_full": 62}
    finally:
        node.stop()


def test_a_deleted_then_rehosted_model_forgets_the_old_workers(api):
    name = unique_name()
    host(api, name, max_diffs=1, max_workers=1, cycle_length=600)
    request_place(api, name)
    old_worker, answer = request_place(api, name)
    assert answer["reason"] == "cycle_full"  # its worker and the model are looked up (cached)
    deleted = api.call("delete-process", {"name": name, "force": True}, admin=True)
    assert deleted.status == 200, deleted.body
    gone = api.call("cycle-request", {"worker_id": old_worker, "model": name, "version": "1"})
    assert (gone.status, gone.error_code) == (404, "worker_unknown")
    host(api, name, max_diffs=1, max_workers=1, cycle_length=600)
    again = api.call("cycle-request", {"worker_id": old_worker, "model": name, "version": "1"})
    assert (again.status, again.error_code) == (404, "worker_unknown")
    _, fresh = request_place(api, name)
    assert fresh["status"] == "accepted" and fresh["cycle"] == 1
    assert cycles_of(api, name)[0]["accepted"] == 1


def test_a_new_version_takes_over_requests_that_name_no_version(api):
    name = unique_name()
    host(api, name, max_diffs=1, max_workers=1, cycle_length=600)
    first = api.call("authenticate", {"model_name": name}).body["worker_id"]
    answer = api.call("cycle-request", {"worker_id": first, "model": name})
    assert answer.body["status"] == "accepted" and answer.body["version"] == "1"
    plan, checkpoint = logistic_regression()
    hosted = api.call("host-training", {"name": name, "version": "2", "client_config": {},
                                        "server_config": {"max_diffs": 1, "cycle_length": 600}},
                      blobs={"model": checkpoint, "plans/training_plan": plan}, admin=True)
    assert hosted.status == 200, hosted.body
    # No version now means version 2: the first version's worker is told to authenticate for
    # it (asked first, while only version 1 was ever looked up by that name)...
    stale = api.call("cycle-request", {"worker_id": first, "model": name})
    assert (stale.status, stale.error_code) == (403, "worker_process_mismatch")
    # ...and a worker of version 2 gets a place in it.
    second = api.call("authenticate", {"model_name": name}).body["worker_id"]
    answer = api.call("cycle-request", {"worker_id": second, "model": name})
    assert answer.status == 200, answer.body
    assert answer.body["status"] == "accepted" and answer.body["version"] == "2"


def test_a_finished_model_says_so_until_it_is_deleted(api):
    name = unique_name()
    host(api, name, max_diffs=1, num_cycles=1)
    worker, body = request_place(api, name)
    assert report(api, worker, body, seed=1).status == 200
    for _ in range(2):
        assert request_place(api, name, worker)[1]["reason"] == "training_finished"
    assert api.call("delete-process", {"name": name}, admin=True).status == 200
    gone = api.call("cycle-request", {"worker_id": worker, "model": name, "version": "1"})
    assert (gone.status, gone.error_code) == (404, "worker_unknown")
    unknown = api.call("authenticate", {"model_name": name})
    assert unknown.error_code == "process_unknown"


@pytest.mark.parametrize("backend", database_backends())
def test_the_cooldown_is_honoured_after_a_restart(node_factory, backend):
    node = node_factory(backend)
    api = HttpApi(node.url, node.admin_token)
    name = unique_name()
    host(api, name, max_diffs=1, max_workers=1, do_not_reuse_workers_until_cycle=3)
    veteran, body = request_place(api, name)
    assert report(api, veteran, body, seed=1).status == 200  # cycle 1 closes
    assert request_place(api, name, veteran)[1]["reason"] == "worker_cooling_down"
    node.kill()
    node = node.restart()
    try:
        api = HttpApi(node.url, node.admin_token)
        assert request_place(api, name, veteran)[1]["reason"] == "worker_cooling_down"
        newcomer, body = request_place(api, name)
        assert body["status"] == "accepted" and body["cycle"] == 2
        assert report(api, newcomer, body, seed=2).status == 200  # cycle 2 closes
        # Cycle 3: two cycles since its last, still cooling down (3 needed); the newcomer too.
        assert request_place(api, name, veteran)[1]["reason"] == "worker_cooling_down"
        assert request_place(api, name, newcomer)[1]["reason"] == "worker_cooling_down"
        third, body = request_place(api, name)
        assert body["status"] == "accepted" and body["cycle"] == 3
        assert report(api, third, body, seed=3).status == 200
        # Cycle 4: the veteran trained in cycle 1, three cycles ago: welcome back.
        assert request_place(api, name, newcomer)[1]["reason"] == "worker_cooling_down"
        _, back = request_place(api, name, veteran)
        assert back["status"] == "accepted" and back["cycle"] == 4
    finally:
        node.stop()


def test_a_device_holding_a_place_gets_it_back_and_a_reporter_is_told_so(api):
    name = unique_name()
    host(api, name, max_diffs=2, max_workers=2, cycle_length=600)
    worker, first = request_place(api, name)
    _, retried = request_place(api, name, worker)
    assert retried["status"] == "accepted" and retried["request_key"] == first["request_key"]
    assert report(api, worker, first, seed=1).status == 200
    _, after = request_place(api, name, worker)
    assert after["reason"] == "already_reported"
    assert cycles_of(api, name)[0]["rejected"] == {"already_reported": 1}


@pytest.mark.parametrize("backend", database_backends())
def test_an_answered_place_survives_kill_9(node_factory, backend):
    """A place is committed under the cycle's lock (without waiting for the disk) before it is
    answered: the Node's crash right after the answer keeps it. (The flush that follows, before
    the answer, is for power loss, which this test cannot cut.)"""
    node = node_factory(backend)
    api = HttpApi(node.url, node.admin_token)
    name = unique_name()
    host(api, name, max_diffs=2, max_workers=2, cycle_length=600)
    worker, body = request_place(api, name)
    assert body["status"] == "accepted"
    node.kill()
    node = node.restart()
    try:
        api = HttpApi(node.url, node.admin_token)
        _, again = request_place(api, name, worker)
        assert again["status"] == "accepted" and again["request_key"] == body["request_key"]
        assert cycles_of(api, name)[0]["accepted"] == 1
        assert report(api, worker, body, seed=1).status == 200
    finally:
        node.stop()


@pytest.mark.parametrize("backend", database_backends())
def test_a_burst_of_acceptances_fills_the_cohort_exactly_and_survives_kill_9(node_factory,
                                                                            backend):
    """Places are taken in memory and written in shared transactions (place_writer.py): however
    many devices ask at once, the cohort is filled exactly, and every place a device was told
    about is committed before the answer, so a crash right after keeps them all."""
    node = node_factory(backend)
    api = HttpApi(node.url, node.admin_token)
    name = unique_name()
    host(api, name, max_diffs=12, max_workers=12, cycle_length=600)
    workers = [api.call("authenticate", {"model_name": name}).body["worker_id"]
               for _ in range(30)]

    def ask(worker: str) -> dict:
        return requests.post(f"{node.url}/model-centric/cycle-request", timeout=30,
                             json={"worker_id": worker, "model": name, "version": "1"}).json()

    with ThreadPoolExecutor(10) as pool:
        answers = dict(zip(workers, pool.map(ask, workers), strict=True))
    accepted = {w: a["request_key"] for w, a in answers.items() if a["status"] == "accepted"}
    assert len(accepted) == 12
    assert {a["reason"] for a in answers.values() if a["status"] != "accepted"} == {"cycle_full"}
    node.kill()
    node = node.restart()
    try:
        api = HttpApi(node.url, node.admin_token)
        figures = cycles_of(api, name)[0]  # (written with the places, and with the rejections)
        assert (figures["accepted"], figures["requests"], figures["rejected"]) == (
            12, 30, {"cycle_full": 18})
        for worker in workers:  # each device gets back what it was told, nothing more
            _, again = request_place(api, name, worker)
            assert again.get("request_key") == accepted.get(worker), again
        assert cycles_of(api, name)[0]["accepted"] == 12
    finally:
        node.stop()
