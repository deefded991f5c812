"""Evaluation at the Node: held-out test sets scored on every checkpoint, and federated evaluation
(devices evaluating the cycle's checkpoint on their data), against real Node processes on SQLite
and PostgreSQL. Tests synchronise on the Node's state (the admin `cycles` listing), never on sleeps.
"""

from __future__ import annotations

import threading
from functools import cache

import gevent
import numpy as np
import pytest

from fedgrid_node.cycles.selection import Speeds
from fedgrid_node.db.database import Database
from fedgrid_node.db.models import Checkpoint, Worker
from fedgrid_node.model_centric.evaluation import MAX_EVALUATION_SET_BYTES
from fedgrid_node.model_centric.hosting import host_training
from fedgrid_plans import tensors
from fedgrid_server.charts import format_value
from fedgrid_server.config import normalize_database_url
from tests.support.api_client import HttpApi
from tests.support.databases import database_backends, make_database_url
from tests.support.models import logistic_regression, random_diff, unique_name

from .test_cycle_engine import cycles_of, host, request_place, wait_for


def examples(count: int = 300, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((count, 64)).astype(np.float32),
            rng.integers(0, 10, count).astype(np.int64))


def encoded(features, labels) -> bytes:
    return tensors.encode({"features": features, "labels": labels})


def upload(api, name, data: bytes, **fields):
    return api.call("evaluation-set", {"name": name, **fields}, blobs={"evaluation_set": data},
                    admin=True)


def expected_score(checkpoint: bytes, features, labels) -> dict[str, float]:
    """Cross-entropy and accuracy of the 64 -> 10 linear model, by hand in float64."""
    params = tensors.decode(checkpoint)
    logits = features.astype(np.float64) @ params["weight"].astype(np.float64).T + params["bias"]
    top = logits.max(axis=1)
    log_sum = top + np.log(np.exp(logits - top[:, None]).sum(axis=1))
    loss = float(np.mean(log_sum - logits[np.arange(len(labels)), labels]))
    return {"accuracy": float(np.mean(logits.argmax(axis=1) == labels)), "loss": loss}


def retrieve(api, name, number) -> bytes:
    answer = api.call("retrieve-model", {"name": name, "checkpoint": number}, admin=True)
    assert answer.status == 200
    return answer.content


def report_diff(api, worker_id, body, seed, num_samples=10):
    diff = tensors.encode(random_diff(logistic_regression()[1], seed, scale=0.5))
    return api.call("report", {"worker_id": worker_id, "request_key": body["request_key"],
                               "num_samples": num_samples}, blobs={"diff": diff})


def report_metrics(api, worker_id, body, metrics, num_samples):
    return api.call("report", {"worker_id": worker_id, "request_key": body["request_key"],
                               "num_samples": num_samples, "metrics": metrics})


def evaluations(api, name) -> dict[int, dict]:
    listing = api.call("cycles", {"name": name}, admin=True).body
    return {entry["number"]: entry for entry in listing["checkpoints"]}


@cache
def plan_without_forward_graph() -> tuple[bytes, bytes]:
    import torch

    from fedgrid_plans.compiler import compile_plan

    torch.manual_seed(0)
    compiled = compile_plan(torch.nn.Linear(64, 10), loss="cross_entropy", include_forward=False,
                            example_batch=(np.zeros((4, 64), np.float32), np.zeros(4, np.int64)))
    return compiled.to_bytes(), tensors.encode(compiled.checkpoint())


# ----------------------------------------------------------------------------- upload checks

FEATURES, LABELS = examples(20)
REFUSALS = {
    "not safetensors": (b"features,labels\n0.1,3\n", "evaluation_set_invalid", "not_safetensors"),
    "other tensor names": (encoded(FEATURES, LABELS).replace(b"features", b"features"[::-1]),
                           "evaluation_set_invalid", "tensor_names"),
    "lengths differ": (encoded(FEATURES, LABELS[:-1]), "evaluation_set_invalid", "lengths"),
    "no examples": (encoded(FEATURES[:0], LABELS[:0]), "evaluation_set_invalid", "empty"),
    "NaN features": (encoded(np.full_like(FEATURES, np.nan), LABELS), "evaluation_set_invalid",
                     "not_finite"),
    "feature shape": (encoded(FEATURES[:, :63], LABELS), "evaluation_set_mismatch", "features"),
    "integer features": (encoded(FEATURES.astype(np.int64), LABELS), "evaluation_set_mismatch",
                         "features"),
    "class beyond the outputs": (encoded(FEATURES, np.full(20, 10, np.int64)),
                                 "evaluation_set_mismatch", "labels"),
    "negative class": (encoded(FEATURES, np.full(20, -1, np.int64)), "evaluation_set_mismatch",
                       "labels"),
    "float labels": (encoded(FEATURES, LABELS.astype(np.float32)), "evaluation_set_mismatch",
                     "labels"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_an_evaluation_set_that_does_not_fit_the_plan_is_refused_with_its_code(api, case):
    name = unique_name()
    host(api, name)
    data, code, detail = REFUSALS[case]
    answer = upload(api, name, data)
    assert answer.status == 400 and answer.error_code == code, answer.body
    assert detail in answer.body["error"]["details"].values()
    assert evaluations(api, name) == {}  # nothing stored, nothing scored


def test_an_evaluation_set_needs_the_admin_token_and_a_hosted_model(api):
    name = unique_name()
    host(api, name)
    data = encoded(*examples(5))
    anonymous = api.call("evaluation-set", {"name": name}, blobs={"evaluation_set": data})
    assert anonymous.status == 401 and anonymous.error_code == "admin_token_required"
    unknown = upload(api, unique_name(), data)
    assert unknown.status == 404 and unknown.error_code == "process_unknown"


def test_an_evaluation_set_over_the_limit_is_refused(shared_node):
    api = HttpApi(shared_node.url, shared_node.admin_token)
    name = unique_name()
    host(api, name)
    rows = MAX_EVALUATION_SET_BYTES // (64 * 4) + 1
    answer = upload(api, name, encoded(np.zeros((rows, 64), np.float32), np.zeros(rows, np.int64)))
    assert answer.status == 413 and answer.error_code == "evaluation_set_too_large"
    assert answer.body["error"]["details"] == {"limit_bytes": MAX_EVALUATION_SET_BYTES}


def test_a_plan_without_a_forward_graph_cannot_be_scored(api):
    plan, checkpoint = plan_without_forward_graph()
    name = unique_name()
    hosted = api.call("host-training", {"name": name, "version": "1"},
                      blobs={"model": checkpoint, "plans/training_plan": plan}, admin=True)
    assert hosted.status == 200, hosted.body
    answer = upload(api, name, encoded(*examples(5)))
    assert answer.status == 400 and answer.error_code == "plan_not_evaluable"


def test_a_bad_evaluation_set_at_hosting_refuses_the_hosting(api):
    plan, checkpoint = logistic_regression()
    name = unique_name()
    features, labels = examples(5)
    refused = api.call("host-training", {"name": name, "version": "1"}, admin=True, blobs={
        "model": checkpoint, "plans/training_plan": plan,
        "evaluation_set": encoded(features[:, :10], labels)})
    assert refused.status == 400 and refused.error_code == "evaluation_set_mismatch"
    # Nothing was hosted: the name is still free.
    assert api.call("cycles", {"name": name}, admin=True).error_code == "process_unknown"


# ----------------------------------------------------------------------------- held-out scores


@pytest.fixture
def http_api(shared_node):
    client = HttpApi(shared_node.url, shared_node.admin_token)
    yield client
    client.close()


def test_every_checkpoint_gets_a_held_out_score_matching_an_independent_computation(http_api):
    api = http_api
    name = unique_name()
    host(api, name, max_diffs=1, num_cycles=2)
    features, labels = examples()
    answer = upload(api, name, encoded(features, labels))
    assert answer.status == 200, answer.body
    assert answer.body["num_samples"] == 300 and answer.body["checkpoints_to_score"] == 1
    for seed in (1, 2):
        worker, body = request_place(api, name)
        assert body["task"] == "train"
        assert report_diff(api, worker, body, seed).status == 200
    scored = wait_for(lambda: (lambda e: e if all(e.get(n, {}).get("test_metrics")
                                                   for n in (1, 2, 3)) else None)(
        evaluations(api, name)), "checkpoints 1 to 3 to be scored")
    for number in (1, 2, 3):
        expected = expected_score(retrieve(api, name, number), features, labels)
        got = scored[number]["test_metrics"]
        assert got["num_samples"] == 300
        assert got["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-9)
        assert got["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    # Each cycle shows the score of the checkpoint it produced.
    cycles = cycles_of(api, name)
    assert [c["test_metrics"] for c in cycles] == [scored[2]["test_metrics"],
                                                   scored[3]["test_metrics"]]
    # The random diffs moved the model: the scores differ, so they are not one score repeated.
    assert len({scored[n]["test_metrics"]["loss"] for n in (1, 2, 3)}) == 3
    metrics = api.session.get(f"{api.url}/metrics",
                              headers={"Authorization": f"Bearer {api.admin_token}"}).text
    labels_text = f'model="{name}",version="1"'
    assert (f"fedgrid_checkpoint_test_accuracy{{{labels_text}}} "
            f"{float(scored[3]['test_metrics']['accuracy'])!r}") in metrics
    assert f'fedgrid_evaluated_checkpoint{{{labels_text},evaluation="test"}} 3.0' in metrics


def test_a_new_evaluation_set_replaces_the_scores(http_api):
    api = http_api
    name = unique_name()
    plan, checkpoint = logistic_regression()
    first = examples(50, seed=1)
    hosted = api.call("host-training", {"name": name, "version": "1"}, admin=True, blobs={
        "model": checkpoint, "plans/training_plan": plan, "evaluation_set": encoded(*first)})
    assert hosted.status == 200, hosted.body
    expected = expected_score(checkpoint, *first)
    score = wait_for(lambda: evaluations(api, name).get(1, {}).get("test_metrics"),
                     "checkpoint 1 to be scored at hosting")
    assert score["accuracy"] == pytest.approx(expected["accuracy"])
    second = examples(80, seed=2)
    assert upload(api, name, encoded(*second)).status == 200
    rescored = wait_for(lambda: (lambda s: s if s and s["num_samples"] == 80 else None)(
        evaluations(api, name).get(1, {}).get("test_metrics")), "the score on the new set")
    assert rescored["loss"] == pytest.approx(expected_score(checkpoint, *second)["loss"], rel=1e-5)


@pytest.mark.parametrize("backend", database_backends())
def test_scoring_never_blocks_a_cycle_and_a_restart_scores_what_was_left(backend, tmp_path):
    """The scorer is held inside its forward run (on the thread pool) while two cycles close and
    the next one hands out a place: none of it waits for the score. The Node then stops before
    scoring; the next start scores every checkpoint."""
    database = make_database_url(backend, tmp_path)
    url = normalize_database_url(database.url) if database.url else f"sqlite:///{tmp_path / 'n.db'}"
    db = Database(url)
    db.upgrade()
    from fedgrid_node.cycles.engine import CycleEngine

    engine = CycleEngine(db)
    engine.start()
    entered, release = threading.Event(), threading.Event()
    scored = engine.held_out.score

    def held_score(*args):
        entered.set()
        release.wait(60)
        return scored(*args)

    engine.held_out.score = held_score
    try:
        plan, checkpoint = logistic_regression()
        features, labels = examples(40)
        hosted = host_training(db, engine, {
            "name": "blocked", "version": "1", "model": checkpoint,
            "plans": {"training_plan": plan}, "evaluation_set": encoded(features, labels),
            "server_config": {"max_diffs": 1, "cycle_length": 600},
        })
        process_id = hosted["process_id"]
        while not entered.is_set():  # the scorer is now inside checkpoint 1's forward run
            gevent.sleep(0.01)
        for sequence, seed in ((1, 1), (2, 2)):
            worker_id = f"worker{seed}"
            with db.session() as session:
                session.add(Worker(id=worker_id, process_id=process_id))
            place = engine.request_cycle(worker_id, process_id, Speeds())
            assert place["status"] == "accepted" and place["cycle"] == sequence
            diff = tensors.encode(random_diff(checkpoint, seed))
            assert engine.report(worker_id, place["request_key"], diff, 10, None)["status"] == "success"
        with db.session() as session:
            session.add(Worker(id="worker3", process_id=process_id))
        assert engine.request_cycle("worker3", process_id, Speeds())["cycle"] == 3
        with db.session() as session:
            rows = session.query(Checkpoint.number, Checkpoint.test_metrics).order_by(
                Checkpoint.number).all()
        assert rows == [(1, None), (2, None), (3, None)]  # written, none scored yet
        # The Node stops with its scorer still held: what it did not score, the next start does.
        engine.stop()
        release.set()
        engine = CycleEngine(db)
        engine.start()
        engine.held_out.join(process_id)
        with db.session() as session:
            scores = dict(session.query(Checkpoint.number, Checkpoint.test_metrics).all())
            stored = {n: session.query(Checkpoint.data).filter_by(number=n).scalar()
                      for n in scores}
        for number in (1, 2, 3):
            expected = expected_score(stored[number], features, labels)
            assert scores[number]["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    finally:
        release.set()
        engine.stop()
        db.dispose()
        database.drop()


# ----------------------------------------------------------------------------- federated


def test_federated_evaluation_on_schedule_aggregated_and_not_counted_as_training(http_api):
    api = http_api
    name = unique_name()
    host(api, name, max_diffs=2, max_workers=2, evaluation_every=2, evaluation_devices=2,
         cycle_length=600)
    trainers = [request_place(api, name) for _ in range(2)]
    evaluators = [request_place(api, name) for _ in range(2)]
    assert [body["task"] for _, body in trainers] == ["train", "train"]
    assert [body["task"] for _, body in evaluators] == ["evaluate", "evaluate"]
    assert all(body["checkpoint"] == 1 for _, body in evaluators)
    turned_away = request_place(api, name)[1]
    assert turned_away["status"] == "rejected" and turned_away["reason"] == "cycle_full"
    # An evaluator downloads the checkpoint like any device.
    worker, body = evaluators[0]
    model = api.call("get-model", {"worker_id": worker, "request_key": body["request_key"]})
    assert model.status == 200 and model.content == logistic_regression()[1]

    refused = api.call("report", {"worker_id": worker, "request_key": body["request_key"],
                                  "num_samples": 10, "metrics": {"accuracy": 0.5}},
                       blobs={"diff": tensors.encode(random_diff(logistic_regression()[1], 3))})
    assert refused.status == 400 and refused.error_code == "report_diff_unexpected"
    no_metrics = report_metrics(api, worker, body, None, 10)
    assert no_metrics.status == 400 and no_metrics.error_code == "metrics_invalid"
    assert report_metrics(api, worker, body, {"accuracy": 0.5, "loss": 1.0}, 10).status == 200
    again = report_metrics(api, worker, body, {"accuracy": 0.5}, 10)
    assert again.status == 409 and again.error_code == "report_duplicate"
    worker, body = evaluators[1]
    assert report_metrics(api, worker, body, {"accuracy": 0.8}, 30).status == 200
    trainer, trainer_body = trainers[0]
    missing = api.call("report", {"worker_id": trainer, "request_key": trainer_body["request_key"],
                                  "num_samples": 10})
    assert missing.status == 400 and missing.error_code == "report_diff_missing"

    open_cycle = cycles_of(api, name)[0]
    assert open_cycle["status"] == "open" and open_cycle["reported"] == 0  # not toward the goal
    assert open_cycle["accepted"] == 2
    for seed, (trainer, trainer_body) in enumerate(trainers, start=1):
        assert report_diff(api, trainer, trainer_body, seed, num_samples=10).status == 200
    first = wait_for(lambda: [c for c in cycles_of(api, name) if c["status"] == "completed"],
                     "cycle 1 to close")[0]
    assert first["reported"] == 2 and first["accepted"] == 2 and first["dropped"] == 0
    # The checkpoint is the average of the two training diffs only.
    start = tensors.decode(logistic_regression()[1])
    diffs = [random_diff(logistic_regression()[1], seed, scale=0.5) for seed in (1, 2)]
    new = tensors.decode(retrieve(api, name, 2))
    for key in start:
        np.testing.assert_allclose(new[key], start[key] - (diffs[0][key] + diffs[1][key]) / 2,
                                   rtol=1e-5, atol=1e-6)
    federated = evaluations(api, name)[1]["federated_metrics"]
    assert federated["num_samples"] == 40 and federated["reports"] == 2
    assert federated["metrics"]["accuracy"] == pytest.approx((0.5 * 10 + 0.8 * 30) / 40)
    assert federated["metrics"]["loss"] == pytest.approx(1.0)  # only the report that had one
    metrics = api.session.get(f"{api.url}/metrics",
                              headers={"Authorization": f"Bearer {api.admin_token}"}).text
    labels_text = f'model="{name}",version="1"'
    assert (f'fedgrid_checkpoint_federated_metric{{{labels_text},metric="accuracy"}} '
            f'{federated["metrics"]["accuracy"]!r}') in metrics
    assert f'fedgrid_evaluated_checkpoint{{{labels_text},evaluation="federated"}} 1.0' in metrics
    assert f"fedgrid_checkpoint_test_accuracy{{{labels_text}}}" not in metrics  # no held-out set

    # Cycle 2 is not an evaluating cycle (every 2: cycles 1, 3...): a spare device is turned away.
    second = [request_place(api, name, worker_id) for worker_id, _ in trainers]
    assert [body["task"] for _, body in second] == ["train", "train"]
    assert request_place(api, name)[1]["reason"] == "cycle_full"
    for seed, (trainer, trainer_body) in enumerate(second, start=3):
        assert report_diff(api, trainer, trainer_body, seed).status == 200
    wait_for(lambda: len(cycles_of(api, name)) == 3, "cycle 3 to open")
    for worker_id, _ in trainers:
        assert request_place(api, name, worker_id)[1]["task"] == "train"
    third = request_place(api, name, evaluators[0][0])[1]
    assert third["task"] == "evaluate" and third["checkpoint"] == 3
    assert report_metrics(api, evaluators[0][0], third, {"accuracy": 0.9}, 5).status == 200
    # A cycle shows the evaluation of the checkpoint it produced: cycle 2 produced checkpoint 3.
    rows = cycles_of(api, name)
    assert [c.get("new_checkpoint") for c in rows] == [2, 3, None]
    assert rows[0]["federated_metrics"] is None and rows[2]["federated_metrics"] is None
    assert rows[1]["federated_metrics"] == {"metrics": {"accuracy": 0.9}, "num_samples": 5,
                                            "reports": 1}


def test_an_evaluation_may_report_after_its_cycle_closed(http_api):
    api = http_api
    name = unique_name()
    host(api, name, max_diffs=1, max_workers=1, evaluation_every=1, cycle_length=600)
    trainer, trainer_body = request_place(api, name)
    evaluator, evaluation = request_place(api, name)
    assert evaluation["task"] == "evaluate"
    assert report_diff(api, trainer, trainer_body, 1).status == 200
    wait_for(lambda: cycles_of(api, name)[0]["status"] == "completed", "cycle 1 to close")
    assert api.call("get-model", {"worker_id": evaluator,
                                  "request_key": evaluation["request_key"]}).status == 200
    assert report_metrics(api, evaluator, evaluation, {"accuracy": 0.25}, 8).status == 200
    assert evaluations(api, name)[1]["federated_metrics"]["metrics"] == {"accuracy": 0.25}


def test_the_dashboard_draws_test_accuracy_beside_the_clients_accuracy(http_api):
    import re

    import requests

    api = http_api
    name = unique_name()
    host(api, name, max_diffs=1, num_cycles=2)
    features, labels = examples(100)
    assert upload(api, name, encoded(features, labels)).status == 200
    for seed in (1, 2):
        worker, body = request_place(api, name)
        diff = tensors.encode(random_diff(logistic_regression()[1], seed, scale=0.5))
        assert api.call("report", {"worker_id": worker, "request_key": body["request_key"],
                                   "num_samples": 10, "metrics": {"accuracy": 0.1 * seed}},
                        blobs={"diff": diff}).status == 200
    scored = wait_for(lambda: (lambda e: e if all(e.get(n, {}).get("test_metrics")
                                                   for n in (1, 2, 3)) else None)(
        evaluations(api, name)), "checkpoints 1 to 3 to be scored")
    browser = requests.Session()
    assert browser.post(f"{api.url}/dashboard/login", data={"token": api.admin_token},
                        timeout=10).status_code == 200
    page = browser.get(f"{api.url}/", timeout=10).text
    section = page[page.index(f'data-process="{name}"'):]
    section = section[:section.index("</section>")]
    figure = section[section.index('data-metric="accuracy"'):]
    figure = figure[:figure.index("</figure>")]
    test_line = re.search(r'data-series="test" points="([^"]*)"', figure).group(1)
    assert len(test_line.split(" ")) == 3  # the hosted checkpoint (cycle 0) and both cycles'
    titles = re.findall(r"<title>test · cycle ([^<]*)</title>", figure)
    assert titles == [  # cycle 0: the hosted checkpoint
        f"{cycle}: {format_value(scored[number]['test_metrics']['accuracy'])}"
        for cycle, number in ((0, 1), (1, 2), (2, 3))
    ]
    assert len(re.findall(r'<circle class="dot series-0"', figure)) == 2  # the clients' line
    # The recent cycles' table has the same held-out accuracy per cycle, newest first.
    table = section[section.index('<table class="history">'):]
    shown = re.findall(r'data-evaluation="test">([^<]*)</td>', table)
    assert shown == [f"{scored[n]['test_metrics']['accuracy']:.4g}" for n in (3, 2)]


def test_twin_evaluation_reports_store_exactly_one(http_api, shared_node):
    from concurrent.futures import ThreadPoolExecutor

    api = http_api
    name = unique_name()
    host(api, name, max_diffs=1, max_workers=1, evaluation_every=1, cycle_length=600)
    request_place(api, name)  # takes the one training place
    worker, body = request_place(api, name)
    assert body["task"] == "evaluate"

    def send(accuracy):
        client = HttpApi(shared_node.url, shared_node.admin_token)
        try:
            return report_metrics(client, worker, body, {"accuracy": accuracy}, 10)
        finally:
            client.close()

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, [i / 10 for i in range(8)]))
    assert sorted(a.status for a in answers) == [200] + [409] * 7
    assert {a.error_code for a in answers if a.status == 409} == {"report_duplicate"}
    stored = evaluations(api, name)[1]["federated_metrics"]
    winner = next(i / 10 for i, a in enumerate(answers) if a.status == 200)
    assert stored == {"metrics": {"accuracy": winner}, "num_samples": 10, "reports": 1}


def test_an_evaluation_that_outlives_its_lease_gives_its_place_back(http_api):
    api = http_api
    name = unique_name()
    host(api, name, max_diffs=2, max_workers=2, evaluation_every=1, evaluation_devices=1,
         assignment_lease=1, cycle_length=600)
    first, first_body = request_place(api, name)
    request_place(api, name)  # a second trainer that never reports
    assert report_diff(api, first, first_body, 1).status == 200  # one place stays taken
    late, late_body = request_place(api, name)
    assert late_body["task"] == "evaluate"
    # The second trainer's lease runs out first (it was accepted first), then the evaluation's.
    wait_for(lambda: cycles_of(api, name)[0]["expired"] == 1, "the trainer's lease to run out")
    wait_for(lambda: api.call("get-model", {"worker_id": late, "request_key":
                                            late_body["request_key"]}).error_code
             == "assignment_expired", "the evaluation's lease to run out")
    assert request_place(api, name)[1]["task"] == "train"  # the trainer's freed place
    taker, taken = request_place(api, name)
    assert taken["task"] == "evaluate"  # the evaluation's freed place
    expired = report_metrics(api, late, late_body, {"accuracy": 0.5}, 10)
    assert expired.status == 409 and expired.error_code == "assignment_expired"
    again = request_place(api, name, late)[1]
    assert again["status"] == "rejected" and again["reason"] == "cycle_full"
    assert report_metrics(api, taker, taken, {"accuracy": 0.75}, 4).status == 200
    assert evaluations(api, name)[1]["federated_metrics"]["metrics"] == {"accuracy": 0.75}
