"""Group commit of reports (cycles/report_batches.py): the reports of a cycle that arrive while
an earlier batch is being stored are decided, marked and folded together, and every one of them
is answered exactly as if it had come alone.

A Node in this process, whose fold is held on its pool thread: the reports sent meanwhile are
seen waiting in the cycle's queue (the test waits on that state, not on time).
"""

from __future__ import annotations

import json
import threading

import gevent
import numpy as np
import pytest
from sqlalchemy import event, select, update

from fedgrid_node.cycles.aggregation import RunningWeightedSum
from fedgrid_node.cycles.statuses import AssignmentStatus
from fedgrid_node.db.models import Assignment
from fedgrid_plans import tensors
from tests.support.databases import database_backends
from tests.support.models import logistic_regression, random_diff
from tests.support.node_in_process import node_in_process

from .test_diff_files import expected_checkpoint
from .test_late_reports import ADMIN, cycle_one, place


@pytest.fixture(params=database_backends())
def in_process(request, tmp_path):
    """A Node in this process (its fold can be held), on SQLite or PostgreSQL: the batch's one
    statement for all its rows is the driver's executemany, which differs between the two."""
    yield from node_in_process(tmp_path, request.param)


@pytest.fixture
def sqlite_in_process(tmp_path):
    """The same on SQLite, whose batches commit without waiting for the disk and flush after."""
    yield from node_in_process(tmp_path, "sqlite")


def more_places(client, name: str, count: int) -> list[tuple[str, str]]:
    places = []
    for _ in range(count):
        worker = client.post("/model-centric/authenticate",
                             json={"model_name": name}).json["worker_id"]
        answer = client.post("/model-centric/cycle-request",
                             json={"worker_id": worker, "model": name}).json
        assert answer["status"] == "accepted", answer
        places.append((worker, answer["request_key"]))
    return places


def send(client, worker: str, key: str, seed: int, num_samples: int):
    diff = tensors.encode(random_diff(logistic_regression()[1], seed))
    return client.post("/model-centric/report", data=diff,
                       query_string={"worker_id": worker, "request_key": key,
                                     "num_samples": num_samples,
                                     "metrics": json.dumps({"loss": float(seed)})},
                       headers={"Content-Type": "application/octet-stream"})


class HeldFold:
    """Holds the first fold on its pool thread until released; later folds run freely."""

    def __init__(self, monkeypatch) -> None:
        self.folding, self.release = threading.Event(), threading.Event()
        real = RunningWeightedSum.fold_parts

        def held(running, reports, part, parts):
            if not self.release.is_set():
                self.folding.set()
                self.release.wait(30)
            return real(running, reports, part, parts)

        monkeypatch.setattr(RunningWeightedSum, "fold_parts", held)

    def wait_until_folding(self, first: gevent.Greenlet) -> None:
        while not self.folding.is_set():
            if first.ready():  # answered (or failed) without reaching its fold: never will
                raise AssertionError(f"the first report never reached its fold: {first.get()!r}")
            gevent.sleep(0.001)  # (the hub must run for the first report to reach its fold)


def start(in_process, monkeypatch, **server_config):
    """Host a model, take 4 places, and record the size of every batch the engine stores."""
    name, worker, key = place(in_process, cycle_length=600, **server_config)
    places = [(worker, key), *more_places(in_process, name, 3)]
    engine = in_process.application.extensions["fedgrid"].engine
    batches: list[list[int]] = []
    store = engine._store_reports

    def recorded(state, batch):
        batches.append(sorted(report.assignment_id for report in batch))
        return store(state, batch)

    monkeypatch.setattr(engine, "_store_reports", recorded)
    return name, places, engine, batches


def send_while_the_first_is_folded(in_process, monkeypatch, engine, places, meanwhile=None,
                                   sender=send):
    """Report from the first place and hold its fold; report from the three others meanwhile,
    (call `meanwhile` with their queued reports,) then release: the answers, in the order of
    the places. `sender`: `send` or a wrapper of it."""
    held = HeldFold(monkeypatch)
    first = gevent.spawn(sender, in_process, *places[0], seed=0, num_samples=5)
    held.wait_until_folding(first)
    rest = [gevent.spawn(sender, in_process, *place, seed=index, num_samples=5 + index)
            for index, place in enumerate(places[1:], start=1)]
    (state,) = engine._open.values()
    while state.reports is None or len(state.reports._waiting) < 3:
        gevent.sleep(0.001)  # each checks and writes its diff, then queues
    if meanwhile is not None:
        meanwhile(state.reports._waiting)
    held.release.set()
    return [greenlet.get(timeout=30) for greenlet in [first, *rest]]


def retrieve(client, name: str, number: int) -> dict[str, np.ndarray]:
    answer = client.get("/model-centric/retrieve-model", headers=ADMIN,
                        query_string={"name": name, "checkpoint": number})
    assert answer.status_code == 200, answer.json
    return tensors.decode(answer.data)


def test_reports_that_arrive_together_are_stored_in_one_batch(in_process, monkeypatch):
    """Three reports sent while the first is folded are stored as one batch: one lock, one
    transaction, one fold. All four are answered and counted, their metrics averaged, and the
    goal's checkpoint is their weighted mean."""
    name, places, engine, batches = start(in_process, monkeypatch, max_diffs=4)
    answers = send_while_the_first_is_folded(in_process, monkeypatch, engine, places)
    assert [answer.status_code for answer in answers] == [200] * 4, [a.json for a in answers]
    assert [len(batch) for batch in batches] == [1, 3]
    cycle = cycle_one(in_process, name)
    assert (cycle["status"], cycle["reported"]) == ("completed", 4)
    samples = [5, 6, 7, 8]
    assert cycle["client_metrics"]["loss"] == sum(i * n for i, n in enumerate(samples)) / 26
    expected = expected_checkpoint(list(enumerate(samples)))
    for tensor, value in retrieve(in_process, name, 2).items():
        np.testing.assert_allclose(value, expected[tensor], rtol=1e-5, atol=1e-6)


def test_a_batch_past_the_goal_takes_only_what_the_goal_needs(in_process, monkeypatch):
    """A goal of 2 and four places: with the first report in, a batch of three has room for one.
    The earliest place of the batch counts; the other two hear `cycle_closed`, as they would have
    one at a time, and are left out of the checkpoint."""
    name, places, engine, batches = start(in_process, monkeypatch, max_diffs=2, max_workers=4)
    answers = send_while_the_first_is_folded(in_process, monkeypatch, engine, places)
    assert [len(batch) for batch in batches] == [1, 3]
    assert [answer.status_code for answer in answers] == [200, 200, 409, 409]
    assert {answer.json["error"]["code"] for answer in answers[2:]} == {"cycle_closed"}
    cycle = cycle_one(in_process, name)
    assert (cycle["status"], cycle["reported"]) == ("completed", 2)
    expected = expected_checkpoint([(0, 5), (1, 6)])
    for tensor, value in retrieve(in_process, name, 2).items():
        np.testing.assert_allclose(value, expected[tensor], rtol=1e-5, atol=1e-6)


def test_a_row_that_disagrees_with_memory_is_refused_alone(in_process, monkeypatch):
    """While the batch of three waits, one of its rows stops being accepted behind the engine's
    back (as a lease's expiry would be written). The batch's one statement then changes fewer
    rows than it has reports: it is undone and decided row by row, so exactly that report is
    refused, by its row's status, and the two others count."""
    name, places, engine, _ = start(in_process, monkeypatch, max_diffs=5, max_workers=5)
    expired = []

    def expire_one(waiting):
        expired.append(waiting[1].assignment_id)
        with engine.db.session() as session:
            session.execute(update(Assignment).where(Assignment.id == expired[0])
                            .values(status=AssignmentStatus.EXPIRED))

    answers = send_while_the_first_is_folded(in_process, monkeypatch, engine, places, expire_one)
    (state,) = engine._open.values()
    by_id = {report_id: answer for report_id, answer in zip(
        sorted(state.request_keys[key][0] for _, key in places), answers, strict=True)}
    refused = by_id.pop(expired[0])
    assert (refused.status_code, refused.json["error"]["code"]) == (409, "assignment_expired")
    assert [answer.status_code for answer in by_id.values()] == [200] * 3
    assert cycle_one(in_process, name)["reported"] == 3


def test_a_batch_reads_no_row_for_the_time_from_place_to_report(in_process, monkeypatch):
    """How long each device took from its place to its report (pace steering's figure) comes
    from the open cycle's memory of when each place was given: the batch's only statement on
    the assignments is the one that marks them (it read each row's assigned_at back before).
    The times are those the rows hold."""
    name, places, engine, batches = start(in_process, monkeypatch, max_diffs=5)
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if "assignments" in statement.lower():
            statements.append(" ".join(statement.split()[:2]).upper())

    for sql_engine in (engine.db.engine, engine.db._relaxed_engine):
        event.listen(sql_engine, "before_cursor_execute", record)
    try:
        answers = send_while_the_first_is_folded(in_process, monkeypatch, engine, places)
    finally:
        for sql_engine in (engine.db.engine, engine.db._relaxed_engine):
            event.remove(sql_engine, "before_cursor_execute", record)
    assert [answer.status_code for answer in answers] == [200] * 4
    assert [len(batch) for batch in batches] == [1, 3]
    assert not [s for s in statements if s.startswith("SELECT")], statements
    (state,) = engine._open.values()
    with engine.db.session() as session:
        rows = session.execute(select(Assignment.assigned_at, Assignment.reported_at)
                               .where(Assignment.cycle_id == state.cycle_id)).all()
    assert len(rows) == 4
    stored = sorted((reported - assigned).total_seconds() for assigned, reported in rows)
    np.testing.assert_allclose(sorted(engine._report_times[state.process_id]), stored, atol=1e-3)


def test_a_batch_is_answered_after_one_flush_of_its_commit(sqlite_in_process, monkeypatch):
    """SQLite: the reports of a batch are acknowledged once one flush of the write-ahead log that
    began after their commit has ended, all of them the same one (`Database.flush_mark`). (Each
    report asked for "everything so far" once answered: the first began a flush, and the others,
    arriving while it ran, waited for it and then for a second.)"""
    client = sqlite_in_process
    name, places, engine, batches = start(client, monkeypatch, max_diffs=5)
    log: list[str] = []
    mark_batch = engine._mark_batch

    def marking(connection, taken, now, known):
        log.append(f"commit of {len(taken)}")  # (the commit follows without a yield)
        return mark_batch(connection, taken, now, known)

    group = engine.db._group_flush
    flush = group._flush

    def flushing():
        log.append("flush began")
        flush()
        log.append("flush ended")

    monkeypatch.setattr(engine, "_mark_batch", marking)
    monkeypatch.setattr(group, "_flush", flushing)
    answered: dict[int, int] = {}  # report (its seed) -> how much of the log came before its answer

    def sending(client, worker, key, seed, num_samples):
        answer = send(client, worker, key, seed, num_samples)
        answered[seed] = len(log)
        return answer

    answers = send_while_the_first_is_folded(client, monkeypatch, engine, places, sender=sending)
    assert [answer.status_code for answer in answers] == [200] * 4
    assert [len(batch) for batch in batches] == [1, 3]
    committed = log.index("commit of 3")
    assert log[committed:].count("flush began") == 1, log
    # Durable before answered: each report of the batch heard its answer after the flush begun
    # after its commit ended.
    ended = log.index("flush ended", log.index("flush began", committed))
    assert all(answered[seed] > ended for seed in (1, 2, 3)), (log, answered)
