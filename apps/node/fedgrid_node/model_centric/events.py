"""The model-centric events, one handler each, shared by the HTTP routes and the WebSocket.

A handler takes the request's fields as a dict (binary fields already as bytes, whichever
transport carried them) and returns a JSON-able dict or a `BinaryAnswer`. Transports only
translate; they hold no logic, so both answer the same way (PyGrid's did not).
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from fedgrid_protocol.errors import ApiError, invalid_request
from fedgrid_protocol.events import EVENTS, Event
from fedgrid_protocol.validation import validate

from ..auth.admin import check_admin_token
from ..auth.device_tokens import verify_device_token
from ..cycles.cycle_aggregate import privacy_status
from ..cycles.engine import CycleEngine
from ..cycles.federated_evaluation import federated_scores
from ..cycles.held_out import held_out_scores
from ..cycles.process_control import ProcessControl
from ..cycles.request_lookups import KnownProcess
from ..cycles.selection import Speeds
from ..cycles.server_config import ServerConfig, parse_server_config
from ..cycles.statuses import ProcessStatus
from ..db.database import Database
from ..db.models import Checkpoint, Cycle, Model, Plan, Process, Worker
from .evaluation import upload_evaluation_set
from .hosting import host_training

CHECKPOINT_CACHE_SIZE = 16


@dataclass
class BinaryAnswer:
    data: bytes
    media_type: str = "application/octet-stream"
    filename: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class EventContext:
    """What a transport knows about the caller besides the fields."""

    authorization: str | None = None
    # WebSocket only: how to push `place-available` to this caller if its cycle-request (sent
    # with `notify`) is turned away; `push_key` identifies the socket's subscription.
    push: Callable[[str, str], None] | None = None
    push_key: Any = None
    # WebSocket only: set once the caller's socket is gone; a held cycle-request stops waiting.
    gone: Any = None


@dataclass(frozen=True)
class EventSpec:
    """An event of the protocol (its payloads, admin or not, binary fields) and its handler."""

    handler: Callable[[dict[str, Any], EventContext], dict | BinaryAnswer]
    protocol: Event

    @property
    def admin(self) -> bool:
        return self.protocol.admin

    @property
    def binary_fields(self) -> tuple[str, ...]:
        """Fields taken as bytes: the body's (first), files and blobs, then those that only an
        older JSON form carries (in base64)."""
        return self.protocol.binary_fields + self.protocol.legacy_base64_fields


class ModelCentricEvents:
    def __init__(self, db: Database, engine: CycleEngine, admin_token: str) -> None:
        self.db = db
        self.engine = engine
        self.admin_token = admin_token
        self.control = ProcessControl(db, engine)
        # Checkpoints never change once written, so every device of a cycle can share one copy.
        self._checkpoints: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        handlers = {
            "host-training": self.host_training,
            "authenticate": self.authenticate,
            "cycle-request": self.cycle_request,
            "get-model": self.get_model,
            "get-plan": self.get_plan,
            "report": self.report,
            "retrieve-model": self.retrieve_model,
            "checkpoints": self.list_checkpoints,
            "processes": self.list_processes,
            "cycles": self.list_cycles,
            "pause-process": self.pause_process,
            "resume-process": self.resume_process,
            "stop-process": self.stop_process,
            "delete-process": self.delete_process,
            "evaluation-set": self.evaluation_set,
            "secagg-round": self.secagg_round,
            **{f"secagg-{name}": self._secagg_message(name)
               for name in ("advertise-keys", "share-keys", "masked-input", "unmask")},
        }
        self.events: dict[str, EventSpec] = {
            name: EventSpec(handlers[name], event) for name, event in EVENTS.items()
        }

    def dispatch(self, name: str, data: dict[str, Any], context: EventContext) -> dict | BinaryAnswer:
        spec = self.events.get(name)
        if spec is None:
            raise ApiError("unknown_event", f"there is no event named {name!r}", 404)
        if not isinstance(data, dict):
            raise invalid_request("the request data must be a JSON object")
        if spec.admin:
            check_admin_token(self.admin_token, context.authorization)
        # Every field is checked against the protocol before a handler sees it.
        fields = validate(spec.protocol.request, data, field_codes=spec.protocol.field_codes)
        return spec.handler(dict(fields), context)

    # ----------------------------------------------------------------------------- lookups

    def find_process(self, session, name: Any, version: Any) -> Process:
        if not isinstance(name, str) or not name:
            raise invalid_request("a model name is required", field="model")
        query = select(Process).where(Process.name == name)
        if version not in (None, ""):
            query = query.where(Process.version == str(version))
        process = session.scalars(query.order_by(Process.created_at.desc(), Process.id.desc())).first()
        if process is None:
            shown = name if version in (None, "") else f"{name} version {version}"
            raise ApiError("process_unknown", f"no hosted model named {shown}", 404)
        return process

    def find_worker(self, session, worker_id: Any) -> Worker:
        if not isinstance(worker_id, str) or not worker_id:
            raise invalid_request("field 'worker_id' is required", field="worker_id")
        worker = session.get(Worker, worker_id)
        if worker is None:
            raise ApiError("worker_unknown", "unknown worker_id; authenticate first", 404)
        return worker

    def checkpoint_bytes(self, session, model_id: int, number: int) -> bytes:
        key = (model_id, number)
        if key in self._checkpoints:
            self._checkpoints.move_to_end(key)
            return self._checkpoints[key]
        data = session.scalar(
            select(Checkpoint.data).where(Checkpoint.model_id == model_id, Checkpoint.number == number)
        )
        if data is None:
            raise ApiError("checkpoint_unknown", f"checkpoint {number} does not exist", 404)
        self._checkpoints[key] = data
        if len(self._checkpoints) > CHECKPOINT_CACHE_SIZE:
            self._checkpoints.popitem(last=False)
        return data

    # ----------------------------------------------------------------------------- events

    def host_training(self, data: dict[str, Any], context: EventContext) -> dict[str, Any]:
        return host_training(self.db, self.engine, data)

    def authenticate(self, data: dict[str, Any], context: EventContext) -> dict[str, Any]:
        generation = self.engine.lookups.generation
        with self.db.session() as session:
            process = self.find_process(session, data.get("model_name"), data.get("model_version"))
            config = parse_server_config(process.server_config)
            process_id, name, version = process.id, process.name, process.version
        verify_device_token(config.authentication, data.get("auth_token"))
        worker_id = uuid.uuid4().hex
        with self.db.session() as session:
            session.add(Worker(id=worker_id, process_id=process_id))
        if self.engine.cluster is None:  # its first cycle-request needs no read (no speeds yet)
            self.engine.lookups.remember_worker(generation, worker_id, process_id,
                                                (None, None, None))
        return {
            "status": "success",
            "worker_id": worker_id,
            "model": name,
            "version": version,
            "requires_speed_test": config.requires_speed_test,
        }

    def cycle_request(self, data: dict[str, Any], context: EventContext) -> dict[str, Any]:
        speeds = Speeds(ping_ms=data["ping"], download_mbps=data["download"],
                        upload_mbps=data["upload"])
        measured = (speeds.ping_ms, speeds.download_mbps, speeds.upload_mbps)
        process = (self._known_request(data, measured)
                   or self._look_up_request(data, measured))
        on_place = None
        if data.get("notify") is True and context.push is not None:
            name, version = process.name, process.version
            on_place = (context.push_key, lambda: context.push(name, version))
        return self.engine.request_cycle(data["worker_id"], process.process_id, speeds,
                                         wait=data["wait"] or 0.0, on_place=on_place,
                                         gone=context.gone)

    def _known_request(self, data: dict[str, Any], measured) -> KnownProcess | None:
        """The request's process from memory (a single Node, request_lookups.py), when its worker
        and model are known, belong together and the speeds sent are the ones stored; else None
        (the database decides, and any error is raised there)."""
        if self.engine.cluster is not None:
            return None
        worker_id, name = data.get("worker_id"), data.get("model")
        if not isinstance(worker_id, str) or not isinstance(name, str):
            return None
        worker = self.engine.lookups.worker(worker_id)
        process = self.engine.lookups.process(name, _version_key(data.get("version")))
        if worker is None or process is None or worker != (process.process_id, measured):
            return None
        _check_speed_test(process.config, data)
        return process

    def _look_up_request(self, data: dict[str, Any], measured) -> KnownProcess:
        """The request's worker and process from the database; the worker's speeds stored."""
        generation = self.engine.lookups.generation
        with self.db.session() as session:
            worker = self.find_worker(session, data.get("worker_id"))
            process = self.find_process(session, data.get("model"), data.get("version"))
            if worker.process_id != process.id:
                raise ApiError(
                    "worker_process_mismatch",
                    "this worker_id was issued for another model; authenticate for this one",
                    403,
                )
            config = self.engine.config(session, process.id)
            _check_speed_test(config, data)
            worker.ping_ms, worker.download_mbps, worker.upload_mbps = measured
            known = KnownProcess(process.id, process.name, process.version, config)
            worker_id = worker.id
        if self.engine.cluster is None:  # committed: memory may say the same from now on
            lookups = self.engine.lookups
            lookups.remember_worker(generation, worker_id, known.process_id, measured)
            lookups.remember_process(generation, data["model"], _version_key(data.get("version")),
                                     known)
        return known

    def _assignment_context(self, session, data: dict[str, Any]):
        worker = self.find_worker(session, data["worker_id"])
        assignment = self.engine.find_assignment(session, worker.id, data["request_key"])
        return assignment, assignment.cycle

    def get_model(self, data: dict[str, Any], context: EventContext) -> BinaryAnswer:
        with self.db.session() as session:
            _, cycle = self._assignment_context(session, data)
            model_id = session.scalar(select(Model.id).where(Model.process_id == cycle.process_id))
            if data["model_id"] is not None and data["model_id"] != model_id:
                raise ApiError("model_unknown", "model_id is not the model of this assignment", 404)
            payload = self.checkpoint_bytes(session, model_id, cycle.checkpoint_number)
        return BinaryAnswer(
            payload,
            filename=f"checkpoint-{cycle.checkpoint_number}.safetensors",
            headers={"X-Fedgrid-Checkpoint": str(cycle.checkpoint_number)},
        )

    def get_plan(self, data: dict[str, Any], context: EventContext) -> BinaryAnswer:
        with self.db.session() as session:
            _, cycle = self._assignment_context(session, data)
            plan = session.get(Plan, data["plan_id"])
            if plan is None or plan.process_id != cycle.process_id or plan.kind != "client":
                raise ApiError("plan_unknown", "plan_id is not a plan of this assignment's model", 404)
            return BinaryAnswer(plan.data, filename=f"{plan.name}.fgplan",
                                headers={"X-Fedgrid-Plan-Hash": plan.content_hash})

    def report(self, data: dict[str, Any], context: EventContext) -> dict[str, Any]:
        return self.engine.report(data["worker_id"], data["request_key"], data["diff"],
                                  data["num_samples"], data["metrics"])

    def secagg_round(self, data: dict[str, Any], context: EventContext) -> dict[str, Any]:
        return self.engine.secure.round(data["worker_id"], data["request_key"],
                                        data["wait"] or 0.0, data["roster"] == "all")

    def _secagg_message(self, round_name: str):
        def handle(data: dict[str, Any], context: EventContext) -> dict[str, Any]:
            return self.engine.secure.receive(data["worker_id"], data["request_key"], round_name,
                                              data)

        return handle

    def retrieve_model(self, data: dict[str, Any], context: EventContext) -> BinaryAnswer:
        with self.db.session() as session:
            process = self.find_process(session, data.get("name"), data.get("version"))
            model_id = process.model.id
            wanted = data["checkpoint"]
            if wanted in (None, "latest"):
                number = session.scalar(
                    select(Checkpoint.number)
                    .where(Checkpoint.model_id == model_id)
                    .order_by(Checkpoint.number.desc())
                    .limit(1)
                )
            else:
                number = wanted
            payload = self.checkpoint_bytes(session, model_id, number)
        return BinaryAnswer(
            payload,
            filename=f"{process.name}-{process.version}-checkpoint-{number}.safetensors",
            headers={"X-Fedgrid-Checkpoint": str(number)},
        )

    def list_checkpoints(self, data: dict[str, Any], context: EventContext) -> dict[str, Any]:
        with self.db.session() as session:
            process = self.find_process(session, data.get("name"), data.get("version"))
            rows = session.execute(
                select(Checkpoint.number, Checkpoint.created_at)
                .where(Checkpoint.model_id == process.model.id)
                .order_by(Checkpoint.number)
            ).all()
            return {
                "model": process.name,
                "version": process.version,
                "checkpoints": [
                    {"number": number, "created_at": created.isoformat() + "Z"} for number, created in rows
                ],
                "latest": rows[-1].number,
            }

    def list_processes(self, data: dict[str, Any], context: EventContext) -> dict[str, Any]:
        with self.db.session() as session:
            processes = session.scalars(select(Process).order_by(Process.id)).all()
            answer = []
            for process in processes:
                cycle = session.scalars(
                    select(Cycle).where(Cycle.process_id == process.id).order_by(Cycle.sequence.desc())
                ).first()
                config = parse_server_config(process.server_config)
                answer.append(
                    {
                        "id": process.id,
                        "model": process.name,
                        "version": process.version,
                        "status": process.status,
                        "client_config": process.client_config,
                        "server_config": config.public(),
                        "cycle": None if cycle is None else {
                            "sequence": cycle.sequence,
                            "status": cycle.status,
                            "checkpoint": cycle.checkpoint_number,
                            "deadline": cycle.deadline.isoformat() + "Z",
                        },
                        # Why a finished process finished: its last cycle's summary records it.
                        "finished_because": (cycle.summary or {}).get("finished_because")
                        if cycle is not None and process.status == ProcessStatus.FINISHED else None,
                        "privacy": privacy_status(session, process.id, config),
                    }
                )
        return {"processes": answer}


    def list_cycles(self, data: dict[str, Any], context: EventContext) -> dict[str, Any]:
        """Per-cycle metrics; the open cycle's figures are live from the engine.

        Each cycle also shows the evaluation of the checkpoint it produced (`new_checkpoint`):
        `test_metrics` (held-out, scored by the Node) and `federated_metrics` (reported by
        evaluating devices); `checkpoints` lists both for every checkpoint, the hosted one too."""
        with self.db.session() as session:
            process = self.find_process(session, data.get("name"), data.get("version"))
            cycles = session.scalars(
                select(Cycle).where(Cycle.process_id == process.id).order_by(Cycle.sequence)
            ).all()
            evaluations = checkpoint_evaluations(session, process.id)
            listed = []
            for cycle in cycles:
                figures = self.engine.cycle_metrics(cycle)
                produced = evaluations.get(figures.get("new_checkpoint"), {})
                figures["test_metrics"] = produced.get("test_metrics")
                figures["federated_metrics"] = produced.get("federated_metrics")
                listed.append(figures)
            return {
                "model": process.name,
                "version": process.version,
                "status": process.status,
                "cycles": listed,
                "checkpoints": [{"number": number, **evaluation}
                                for number, evaluation in sorted(evaluations.items())],
            }

    # ----------------------------------------------------------------------------- control

    def _process_id(self, data: dict[str, Any]) -> int:
        with self.db.session() as session:
            return self.find_process(session, data.get("name"), data.get("version")).id

    def pause_process(self, data: dict[str, Any], context: EventContext) -> dict[str, Any]:
        return self.control_process("pause", self._process_id(data))

    def resume_process(self, data: dict[str, Any], context: EventContext) -> dict[str, Any]:
        return self.control_process("resume", self._process_id(data))

    def stop_process(self, data: dict[str, Any], context: EventContext) -> dict[str, Any]:
        return self.control_process("stop", self._process_id(data))

    def delete_process(self, data: dict[str, Any], context: EventContext) -> dict[str, Any]:
        return self.control_process("delete", self._process_id(data), force=data["force"])

    def control_process(self, control: str, process_id: int, *, force: bool = False) -> dict:
        """pause | resume | stop | delete one process: the events' and the dashboard's way in."""
        if control != "delete":
            return getattr(self.control, control)(process_id)
        with self.db.session() as session:
            model_id = session.scalar(select(Model.id).where(Model.process_id == process_id))
        answer = self.control.delete(process_id, force=force)
        # Ids may be given out again (SQLite reuses the highest): no cached checkpoint may outlive
        # its model.
        for key in [key for key in self._checkpoints if key[0] == model_id]:
            del self._checkpoints[key]
        return answer

    # ----------------------------------------------------------------------------- evaluation

    def evaluation_set(self, data: dict[str, Any], context: EventContext) -> dict[str, Any]:
        return upload_evaluation_set(self, data)


def checkpoint_evaluations(session, process_id: int) -> dict[int, dict[str, Any]]:
    """Checkpoint number -> {"test_metrics", "federated_metrics"}, for evaluated checkpoints."""
    held_out = held_out_scores(session, process_id)
    federated = federated_scores(session, process_id)
    return {
        number: {"test_metrics": held_out.get(number), "federated_metrics": federated.get(number)}
        for number in sorted(set(held_out) | set(federated))
    }


def _version_key(version: Any) -> str | None:
    """A request's version as `find_process` reads it: none (the newest) or its text."""
    return None if version in (None, "") else str(version)


def _check_speed_test(config: ServerConfig, data: dict[str, Any]) -> None:
    if not config.requires_speed_test:
        return
    missing = [
        key
        for key, needed in (
            ("ping", config.maximum_ping),
            ("download", config.minimum_download_speed),
            ("upload", config.minimum_upload_speed),
        )
        if needed is not None and data.get(key) is None
    ]
    if missing:
        raise ApiError(
            "speed_test_required",
            f"this model needs a speed test: send {', '.join(missing)} "
            "(ping in ms, download/upload in Mbit/s)",
            400,
            details={"missing": missing},
        )
