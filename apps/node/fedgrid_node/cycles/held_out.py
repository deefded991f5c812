"""Held-out evaluation: every checkpoint of a process scored on its evaluation set, in the background.

A cycle never waits for a score. Closing a cycle only *schedules* its process (`schedule`); one
greenlet per process then scores every checkpoint that has no score for the current set yet, each
on gevent's thread pool (the forward runs are numpy/ONNX Runtime work), and writes the score on
the checkpoint's row. The next cycle is open and taking reports meanwhile.

Which score is current: a checkpoint's `test_metrics` names the evaluation set it was made with.
An upload replaces the set (a new row, a new id), so scores of an older set are simply no longer
current and are made again; nothing has to be cleared in the upload's transaction, and a score
that finishes after a newer upload cannot pass for a score of the new set. At start-up every
process with a set is scheduled, so checkpoints written just before a crash get their score too.
"""

from __future__ import annotations

import logging
from typing import Any

import gevent
import numpy as np
from sqlalchemy import select, update

from fedgrid_plans import tensors
from fedgrid_plans.executor import PlanExecutor
from fedgrid_plans.scoring import ForwardSpec, forward_spec, score

from ..db.database import Database
from ..db.models import Checkpoint, EvaluationSet, Model, Plan
from .off_hub import run_off_hub

log = logging.getLogger("fedgrid.node.evaluation")

TRAINING_PLAN_NAME = "training_plan"  # PyGrid's name for the plan devices run


def evaluation_plan_id(session, process_id: int) -> int:
    """The plan the Node scores with: `training_plan`, else the process's first client plan."""
    rows = session.execute(
        select(Plan.name, Plan.id)
        .where(Plan.process_id == process_id, Plan.kind == "client")
        .order_by(Plan.id)
    ).all()
    return dict(rows).get(TRAINING_PLAN_NAME, rows[0][1])


def evaluation_plan(session, process_id: int) -> bytes:
    return session.scalar(select(Plan.data).where(Plan.id == evaluation_plan_id(session, process_id)))


def current_set_id(session, process_id: int) -> int | None:
    return session.scalar(select(EvaluationSet.id).where(EvaluationSet.process_id == process_id))


def held_out_scores(session, process_id: int) -> dict[int, dict[str, Any]]:
    """Checkpoint number -> its score on the current evaluation set (scored ones only)."""
    set_id = current_set_id(session, process_id)
    if set_id is None:
        return {}
    rows = session.execute(
        select(Checkpoint.number, Checkpoint.test_metrics)
        .join(Model, Model.id == Checkpoint.model_id)
        .where(Model.process_id == process_id, Checkpoint.test_metrics.is_not(None))
    ).all()
    return {
        number: {k: v for k, v in metrics.items() if k != "evaluation_set"}
        for number, metrics in rows
        if isinstance(metrics, dict) and metrics.get("evaluation_set") == set_id
    }


def decode_evaluation_set(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    decoded = tensors.decode(data)
    return decoded["features"], decoded["labels"]


class HeldOutScorer:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.score = score  # what scores one checkpoint (runs on the thread pool)
        self._workers: dict[int, gevent.Greenlet] = {}  # process id -> its scoring greenlet
        self._again: set[int] = set()  # processes scheduled while their greenlet was running
        # By plan content hash: its executor (a hosted plan never changes). Per process: its
        # current set, decoded, with the set's id (ids are never reused, unlike a process's).
        self._executors: dict[str, tuple[PlanExecutor, ForwardSpec]] = {}
        self._sets: dict[int, tuple[int, np.ndarray, np.ndarray]] = {}

    def start(self) -> None:
        with self.db.session() as session:
            process_ids = session.scalars(select(EvaluationSet.process_id)).all()
        for process_id in process_ids:
            self.schedule(process_id)

    def stop(self) -> None:
        for worker in list(self._workers.values()):
            worker.kill(block=False)
        self._workers.clear()

    def schedule(self, process_id: int) -> None:
        """Score the process's unscored checkpoints soon; returns at once."""
        worker = self._workers.get(process_id)
        if worker is not None and not worker.dead:
            self._again.add(process_id)  # the running pass may have missed the new checkpoint
            return
        self._workers[process_id] = gevent.spawn(self._run, process_id)

    def join(self, process_id: int, timeout: float | None = None) -> None:
        """Wait until no scoring pass is running for the process (shutdown, tests)."""
        worker = self._workers.get(process_id)
        if worker is not None:
            worker.join(timeout)

    def _run(self, process_id: int) -> None:
        try:
            while True:
                self._again.discard(process_id)
                self._score_unscored(process_id)
                if process_id not in self._again:
                    break
        except Exception:  # nobody waits on this greenlet: the log is its only reader
            log.exception("scoring the checkpoints of process %s failed; the next checkpoint "
                          "tries again", process_id)
        finally:
            self._workers.pop(process_id, None)

    def _score_unscored(self, process_id: int) -> None:
        with self.db.session() as session:
            set_id = current_set_id(session, process_id)
            if set_id is None:
                self._sets.pop(process_id, None)  # the process (and its set) is gone
                return
            model_id = session.scalar(select(Model.id).where(Model.process_id == process_id))
            rows = session.execute(
                select(Checkpoint.number, Checkpoint.test_metrics)
                .where(Checkpoint.model_id == model_id)
                .order_by(Checkpoint.number)
            ).all()
        due = [number for number, metrics in rows
               if not isinstance(metrics, dict) or metrics.get("evaluation_set") != set_id]
        if not due:
            return
        loaded = self._evaluation_set(process_id, set_id)
        if loaded is None:
            return  # replaced meanwhile: the upload scheduled a pass for the new set
        features, labels = loaded
        executor, spec = self._executor(process_id)
        for number in due:
            with self.db.session() as session:
                data = session.scalar(select(Checkpoint.data).where(
                    Checkpoint.model_id == model_id, Checkpoint.number == number))
            if data is None:
                return  # the process was removed meanwhile
            result = run_off_hub(self.score, executor, tensors.decode(data), features, labels, spec)
            with self.db.session() as session:
                session.execute(
                    update(Checkpoint)
                    .where(Checkpoint.model_id == model_id, Checkpoint.number == number)
                    .values(test_metrics={**result, "evaluation_set": set_id})
                )
            log.info("process %s checkpoint %d scored on the evaluation set: %s",
                     process_id, number, result)

    def _executor(self, process_id: int) -> tuple[PlanExecutor, ForwardSpec]:
        with self.db.session() as session:
            plan_id = evaluation_plan_id(session, process_id)
            content_hash = session.scalar(select(Plan.content_hash).where(Plan.id == plan_id))
            if content_hash not in self._executors:
                plan = session.scalar(select(Plan.data).where(Plan.id == plan_id))
            else:
                plan = None
        if plan is not None:
            executor = run_off_hub(PlanExecutor, plan)
            self._executors[content_hash] = (executor, forward_spec(executor.plan.manifest))
        return self._executors[content_hash]

    def _evaluation_set(self, process_id: int,
                        set_id: int) -> tuple[np.ndarray, np.ndarray] | None:
        cached = self._sets.get(process_id)
        if cached is None or cached[0] != set_id:
            with self.db.session() as session:
                data = session.scalar(select(EvaluationSet.data).where(EvaluationSet.id == set_id))
            if data is None:
                return None
            features, labels = decode_evaluation_set(data)
            cached = self._sets[process_id] = (set_id, features, labels)
        return cached[1], cached[2]
