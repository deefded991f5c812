"""A single Node's new training places are taken in memory under the cycle's lock and written in
shared transactions (cycles/place_writer.py): concurrent acceptances share one INSERT and one
commit, the cohort limit holds, the figures ride along, a device asking again meanwhile gets the
same place, a place whose cycle closes before it is written is decided again, and a failed write
gives the places back. The engine runs in-process on each backend, its requests in greenlets."""

from __future__ import annotations

import gevent
import gevent.event
import pytest
from sqlalchemy import event, select

from fedgrid_node.cycles.engine import CycleEngine
from fedgrid_node.cycles.process_control import ProcessControl
from fedgrid_node.cycles.selection import Speeds
from fedgrid_node.db.database import Database
from fedgrid_node.db.models import Assignment, Cycle, Worker
from fedgrid_node.model_centric.hosting import host_training
from fedgrid_server.config import normalize_database_url
from tests.support.databases import database_backends, make_database_url
from tests.support.models import logistic_regression


@pytest.fixture(params=database_backends())
def node(request, tmp_path):
    database = make_database_url(request.param, tmp_path)
    url = normalize_database_url(database.url) if database.url else f"sqlite:///{tmp_path / 'n.db'}"
    db = Database(url)
    db.upgrade()
    engine = CycleEngine(db)
    engine.start()
    try:
        yield db, engine
    finally:
        engine.stop()
        db.dispose()
        database.drop()


def hosted(db, engine, max_workers: int) -> tuple[int, list[str]]:
    """A process with `max_workers` places, and twice as many workers."""
    plan, checkpoint = logistic_regression()
    process_id = host_training(db, engine, {
        "name": "grouped", "version": "1", "model": checkpoint, "plans": {"training_plan": plan},
        "server_config": {"max_diffs": max_workers, "max_workers": max_workers,
                          "cycle_length": 600},
    })["process_id"]
    workers = [f"worker{n}" for n in range(2 * max_workers)]
    with db.session() as session:
        session.add_all(Worker(id=worker, process_id=process_id) for worker in workers)
    return process_id, workers


def ask_at_once(engine, process_id: int, workers: list[str]) -> list:
    """Every worker's cycle-request in its own greenlet, all in flight together; each result is
    the answer or the exception it raised."""
    requests = [gevent.spawn(engine.request_cycle, worker, process_id, Speeds())
                for worker in workers]
    gevent.joinall(requests)
    return [request.value if request.successful() else request.exception for request in requests]


def stored_places(db, process_id: int) -> dict[str, str]:
    with db.session() as session:
        return dict(session.execute(select(Assignment.worker_id, Assignment.request_key)).all())


def inserts_places(statement: str) -> bool:
    return "INSERT INTO ASSIGNMENTS" in statement.upper()


def place_inserts(db) -> list[str]:
    """Every statement that inserts assignments, sent by either engine from now on."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if inserts_places(statement):
            seen.append(statement)

    for engine in (db.engine, db._relaxed_engine):
        event.listen(engine, "before_cursor_execute", record)
    return seen


def test_concurrent_acceptances_share_one_insert_and_never_exceed_the_cohort(node):
    db, engine = node
    process_id, workers = hosted(db, engine, max_workers=20)
    inserts = place_inserts(db)
    answers = ask_at_once(engine, process_id, workers)
    accepted = {worker: answer["request_key"]
                for worker, answer in zip(workers, answers, strict=True)
                if answer["status"] == "accepted"}
    assert len(accepted) == 20
    assert [a["reason"] for a in answers if a["status"] != "accepted"] == ["cycle_full"] * 20
    # Every answered place is stored, and nothing else.
    assert stored_places(db, process_id) == accepted
    # Twenty places, one statement each before: now the places in flight share one.
    assert 1 <= len(inserts) <= 2, inserts
    state = engine.open_cycle(process_id)
    assert (state.accepted, len(state.outstanding), state.placing) == (20, 20, {})
    with db.session() as session:  # the figures, committed with the places and the rejections
        cycle = session.get(Cycle, state.cycle_id)
        assert (cycle.requests, cycle.rejected) == (40, {"cycle_full": 20})


def test_the_places_write_the_cycles_figures_with_them(node):
    """Acceptances alone (no rejection writes the figures after them): the request counts are
    committed in the places' own transaction."""
    db, engine = node
    process_id, workers = hosted(db, engine, max_workers=5)
    answers = ask_at_once(engine, process_id, workers[:5])
    assert [a["status"] for a in answers] == ["accepted"] * 5
    with db.session() as session:
        cycle = session.get(Cycle, engine.open_cycle(process_id).cycle_id)
        assert (cycle.requests, cycle.rejected or {}) == (5, {})


def test_a_device_asking_again_while_its_place_is_written_gets_the_same_place(node):
    db, engine = node
    process_id, workers = hosted(db, engine, max_workers=3)
    answers = ask_at_once(engine, process_id, [workers[0]] * 3)
    assert {a["status"] for a in answers} == {"accepted"}
    assert len({a["request_key"] for a in answers}) == 1
    assert stored_places(db, process_id) == {workers[0]: answers[0]["request_key"]}
    assert engine.open_cycle(process_id).accepted == 1


def test_a_place_whose_cycle_closes_before_it_is_written_is_decided_again(node):
    db, engine = node
    process_id, workers = hosted(db, engine, max_workers=2)
    writer = engine._place_writer
    write, entered, go = writer._write, gevent.event.Event(), gevent.event.Event()

    def held_write(state, places):
        entered.set()
        go.wait()
        return write(state, places)

    writer._write = held_write
    request = gevent.spawn(engine.request_cycle, workers[0], process_id, Speeds())
    entered.wait()  # the place is taken in memory, its write held
    assert len(engine.open_cycle(process_id).placing) == 1
    ProcessControl(db, engine).stop(process_id)  # closes the cycle under its lock
    go.set()
    answer = request.get()
    assert (answer["status"], answer["reason"]) == ("rejected", "training_stopped")
    assert stored_places(db, process_id) == {}


def test_a_failed_write_gives_the_places_back(node):
    db, engine = node
    process_id, workers = hosted(db, engine, max_workers=3)

    def refuse(conn, cursor, statement, parameters, context, executemany):
        if inserts_places(statement):
            raise RuntimeError("the database is unreachable")

    event.listen(db._relaxed_engine, "before_cursor_execute", refuse)
    failed = ask_at_once(engine, process_id, workers[:3])
    assert [str(answer) for answer in failed] == ["the database is unreachable"] * 3
    event.remove(db._relaxed_engine, "before_cursor_execute", refuse)
    # The three places are free again, for the same workers or others.
    answers = ask_at_once(engine, process_id, workers[1:5])
    assert [a["status"] for a in answers] == ["accepted"] * 3 + ["rejected"]
    assert len(stored_places(db, process_id)) == 3
    assert engine.open_cycle(process_id).accepted == 3
