"""The device side: a ``Client`` per Node (or Network), a ``Job`` per model, an ``Assignment`` per cycle.

Two styles over the same objects:

- calls: ``assignment = job.request()`` (raises :class:`~fedgrid.errors.Rejected` with the
  numeric ``timeout``), ``result = assignment.train(data)``, ``assignment.report(result)``;
- events, as in PySyft's and syft.js's clients: ``job.on("accepted", handler)``,
  ``job.on("rejected", ...)``, ``job.on("error", ...)``, then ``job.start()``.

An assignment's ``task`` is ``"train"``, or ``"evaluate"`` when the Node schedules federated
evaluation (``server_config.evaluation_every``): then ``assignment.evaluate(data)`` scores the
cycle's checkpoint on local data without training and ``assignment.report(result)`` sends its
metrics only, no diff.

``job.participate(data)`` loops until the model's training is finished. Each of its cycle requests
long-polls (``wait``): the Node holds the answer until a place frees or the next cycle opens, and
after a rejection the device sleeps the ``timeout`` the Node gives (pace steering) instead of
polling.
"""

from __future__ import annotations

import math
import secrets
import sys
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from fedgrid_plans import tensors
from fedgrid_plans.executor import BatchReport, PlanExecutor, TrainingResult, train
from fedgrid_plans.plan_file import Plan
from fedgrid_plans.scoring import forward_spec, score
from fedgrid_protocol.events import MAX_WAIT_SECONDS

from .data import as_arrays
from .data_checks import check_training_data
from .diff_encoding import encode_diff
from .errors import (
    AssignmentExpired,
    FedgridError,
    NetworkUnreachable,
    Rejected,
    ReportRefused,
    TrainingFinished,
    TrainingStopped,
    WorkerUnknown,
)
from .transport import Transport, open_transport, route_to_node, server_kind

EVENTS = ("accepted", "rejected", "error")
# client_config keys (PyGrid's names first) -> the executor's training options.
CLIENT_CONFIG_KEYS = {
    "batch_size": "batch_size",
    "epochs": "epochs",
    "max_updates": "max_updates",
    "lr": "learning_rate",
    "learning_rate": "learning_rate",
    "shuffle": "shuffle",
}
TRAINING_PLAN_NAME = "training_plan"  # PyGrid's name for the plan devices run
TRAIN, EVALUATE = "train", "evaluate"  # an assignment's task
# Long-poll: the most a cycle-request may ask the Node to hold its answer (the protocol's cap), and
# what participate() asks for by default. participate() never asks for more than half the client's
# request timeout, so a held request cannot time out on the way.
PARTICIPATE_WAIT_SECONDS = 25.0


class Client:
    """A connection to a Fedgrid Node, or to a Network that routes each model to a Node.

    ``url`` picks the transport: ``http(s)://host:port`` (HTTP with retries and backoff) or
    ``ws(s)://host:port/ws`` (a WebSocket per calling thread; downloads still go over HTTP).
    ``auth_token`` is sent when authenticating for models that require device authentication.

    >>> client = fedgrid.Client("http://localhost:5000")
    >>> job = client.new_job("digits_mlp")
    """

    def __init__(self, url: str, auth_token: str | None = None, *, retries: int = 5,
                 backoff: float = 0.5, timeout: float = 60.0, threads: int = 1) -> None:
        if urlsplit(url).scheme not in ("http", "https", "ws", "wss"):
            raise ValueError(f"unsupported URL {url!r}: use http(s)://host:port or ws(s)://host:port/ws")
        self.url = url.rstrip("/")
        self.auth_token = auth_token
        self.threads = threads  # ONNX Runtime threads per training run; 1 leaves the device free
        self._options = {"retries": retries, "backoff": backoff, "timeout": timeout}
        self._transports: dict[str, Transport] = {}
        self._is_network: bool | None = None
        self._lock = threading.Lock()

    def transport(self, node_url: str | None = None) -> Transport:
        """The (shared) transport to ``node_url``, by default the client's own URL."""
        node_url = node_url or self.url
        with self._lock:
            if node_url not in self._transports:
                self._transports[node_url] = open_transport(node_url, **self._options)
            return self._transports[node_url]

    def node_url(self, model_name: str, version: str | None = None) -> str:
        """The Node that serves ``model_name``: the client's URL, or the Network's route to it."""
        if self._is_network is None:
            self._is_network = server_kind(self.url, **self._options) == "network"
        if not self._is_network:
            return self.url
        return route_to_node(self.url, model_name, version, **self._options)

    def new_job(self, model_name: str, version: str | None = None, *,
                worker_id: str | None = None) -> Job:
        """A job that trains ``model_name`` (``version``: newest when omitted).

        ``worker_id`` resumes a device identity from an earlier authentication; without it the job
        authenticates on its first request.
        """
        return Job(self, model_name, None if version is None else str(version), worker_id=worker_id)

    def speed_test(self, size: int = 1 << 20) -> dict[str, float]:
        """``{"ping": ms, "download": Mbit/s, "upload": Mbit/s}`` measured against the Node."""
        return self.transport().speed_test(size)

    def close(self) -> None:
        """Close every connection this client opened."""
        with self._lock:
            for transport in self._transports.values():
                transport.close()
            self._transports.clear()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class Job:
    """One model a device trains: authenticates once, then asks for places in cycles."""

    def __init__(self, client: Client, model_name: str, version: str | None = None, *,
                 worker_id: str | None = None) -> None:
        self.client = client
        self.model_name = model_name
        self.version = version
        self.worker_id = worker_id
        self.requires_speed_test = False
        self.speeds: dict[str, float] | None = None
        self._node_url: str | None = None
        self._handlers: dict[str, list[Callable[[Any], Any]]] = {name: [] for name in EVENTS}
        self._executors: dict[int, PlanExecutor] = {}  # plan id -> executor (plans never change)
        self._stopped = threading.Event()

    @property
    def transport(self) -> Transport:
        if self._node_url is None:
            self._node_url = self.client.node_url(self.model_name, self.version)
        return self.client.transport(self._node_url)

    # ----------------------------------------------------------------------------- call style

    def authenticate(self) -> str:
        """Get a worker id bound to this model; returns it. ``request`` calls this when needed."""
        answer = self.transport.call("authenticate", {
            "model_name": self.model_name,
            "model_version": self.version,
            "auth_token": self.client.auth_token,
        })
        self.worker_id = answer["worker_id"]
        self.version = answer.get("version", self.version)
        self.requires_speed_test = bool(answer.get("requires_speed_test"))
        return self.worker_id

    @property
    def request_timeout(self) -> float:
        """The client's per-request timeout in seconds (a long-poll must end well within it)."""
        return float(self.client._options["timeout"])

    def default_wait(self) -> float:
        """The long-poll ``participate`` asks for: 25 s, at most half the request timeout."""
        return min(PARTICIPATE_WAIT_SECONDS, self.request_timeout / 2)

    def request(self, *, speeds: dict[str, float] | None = None,
                wait: float | None = None) -> Assignment:
        """Ask for a place in the current cycle.

        Returns an :class:`Assignment`, or raises :class:`~fedgrid.errors.Rejected` (wait its
        ``timeout`` seconds, then ask again) or :class:`~fedgrid.errors.TrainingFinished`.
        ``speeds`` (``ping`` ms, ``download``/``upload`` Mbit/s) is measured automatically when the
        model has speed gates.

        ``wait`` (seconds, 0 to 30; at most half the client's ``timeout``) long-polls: when the
        cycle is full, this worker already reported or is cooling down, or no cycle is open yet,
        the Node holds the answer until a place frees (then accepts) or ``wait`` seconds pass (then
        rejects, with the ``timeout`` until the next cycle is expected). Omitted: answered at once.
        """
        if wait is not None:
            wait = float(wait)
            if not 0 <= wait <= MAX_WAIT_SECONDS:
                raise ValueError(f"wait must be between 0 and {MAX_WAIT_SECONDS:g} seconds, "
                                 f"not {wait:g}")
            if wait > self.request_timeout / 2:
                raise ValueError(
                    f"wait={wait:g} s could outlast the client's {self.request_timeout:g} s request "
                    f"timeout; ask for at most {self.request_timeout / 2:g} s, or make the "
                    "client's timeout longer")
        if self.worker_id is None:
            self.authenticate()
        if speeds is None and self.requires_speed_test:
            if self.speeds is None:
                self.speeds = self.transport.speed_test()
            speeds = self.speeds
        fields = {"worker_id": self.worker_id, "model": self.model_name, "version": self.version,
                  **(speeds or {})}
        if wait is not None:
            fields["wait"] = wait
        if self.transport.pushes:
            # If rejected, the Node pushes place-available to this socket at the next opening
            # (see wait_for_place); harmless when nobody waits for it.
            fields["notify"] = True
        try:
            answer = self.transport.call("cycle-request", fields)
        except WorkerUnknown:
            # The Node forgot this worker (a new database), or issued it for another model:
            # authenticate again, once (the table's WorkerUnknown: worker_*).
            self.authenticate()
            fields["worker_id"] = self.worker_id
            answer = self.transport.call("cycle-request", fields)
        if answer.get("status") == "accepted":
            return Assignment(self, answer)
        if answer.get("reason") == "training_finished":
            raise TrainingFinished(answer)
        if answer.get("reason") == "training_stopped":
            raise TrainingStopped(answer)
        timeout = answer.get("timeout")
        raise Rejected(str(answer.get("reason", "rejected")),
                       None if timeout is None else float(timeout), answer)

    # ----------------------------------------------------------------------------- event style

    def on(self, event: str, handler: Callable[[Any], Any]) -> Job:
        """Register ``handler`` for ``"accepted"`` (gets the Assignment), ``"rejected"`` (gets the
        :class:`~fedgrid.errors.Rejected`, with ``timeout``) or ``"error"`` (gets the exception).
        Returns the job, so calls chain."""
        if event not in self._handlers:
            raise ValueError(f"unknown event {event!r}; use one of {EVENTS}")
        self._handlers[event].append(handler)
        return self

    def start(self, *, speeds: dict[str, float] | None = None) -> Assignment | None:
        """Request a cycle once and call the matching handlers. Errors go to the ``"error"``
        handlers (raised if there are none). Returns the assignment, or None."""
        try:
            assignment = self.request(speeds=speeds)
        except Rejected as rejection:
            self._emit("rejected", rejection)
            return None
        except FedgridError as error:
            self._emit("error", error)
            return None
        try:
            self._emit("accepted", assignment)
        except FedgridError as error:  # e.g. the handler's report was refused
            self._emit("error", error)
        return assignment

    def _emit(self, event: str, payload: Any) -> None:
        handlers = self._handlers[event]
        if event == "error" and not handlers:
            raise payload
        for handler in handlers:
            handler(payload)

    # ----------------------------------------------------------------------------- loop

    def participate(self, data: Any, *, cycles: int | None = None,
                    on_report: Callable[[Assignment, TrainingResult | EvaluationResult], Any]
                    | None = None,
                    max_network_failures: int = 5, wait: float | None = None,
                    evaluation_data: Any = None,
                    **train_options: Any) -> list[dict[str, Any]]:
        """Keep this device in training until the model is finished or stopped by its researcher
        (or ``cycles`` reports); while it is paused, its ``process_paused`` rejections are waited out.

        Each round: request a place, long-polling (``wait`` seconds, by default 25 and never more
        than half the client's ``timeout``; see :meth:`request`) so the Node answers as soon as a
        place frees or the next cycle opens; when still rejected, sleep the Node's ``timeout``
        (no polling); when accepted, train on ``data`` (``train_options`` as for
        :meth:`Assignment.train`) and report. An assignment that expired meanwhile (its cycle
        closed, or its lease ran out: ``AssignmentExpired``) is dropped and the device asks again.
        When the Node cannot be reached (after the transport's own retries) the device waits
        longer each time (2, 4, 8... up to 60 s) and gives up with ``NetworkUnreachable`` after
        ``max_network_failures`` failures in a row.
        An evaluation assignment (federated evaluation) is scored on ``evaluation_data`` (default:
        ``data``) and its metrics reported; it does not count toward ``cycles``.
        Returns one ``{"cycle", "checkpoint", "task", "num_samples", "metrics"}`` per report made
        (``task``: ``"train"`` or ``"evaluate"``).
        :meth:`stop` (from another thread) ends the loop at its next wait.
        """
        reports: list[dict[str, Any]] = []
        features, labels = as_arrays(data)
        evaluation_set = (features, labels) if evaluation_data is None else as_arrays(evaluation_data)
        wait = self.default_wait() if wait is None else wait
        self._stopped.clear()
        failures = 0
        trained = 0
        while not self._stopped.is_set() and (cycles is None or trained < cycles):
            try:
                assignment = self.request(wait=wait)
                if assignment.task == EVALUATE:
                    result = assignment.evaluate(evaluation_set)
                else:
                    result = assignment.train((features, labels), **train_options)
                assignment.report(result)
            except TrainingFinished:
                break
            except Rejected as rejection:
                failures = 0
                # The Node's timeout, cut short over WebSocket when it pushes place-available.
                self.transport.wait_for_place(self.model_name, self.version,
                                              rejection.timeout or 1.0, self._stopped)
                continue
            except AssignmentExpired:
                failures = 0
                continue
            except NetworkUnreachable:
                failures += 1
                if failures >= max_network_failures:
                    raise
                self._stopped.wait(min(60.0, 2.0**failures))
                continue
            failures = 0
            trained += assignment.task != EVALUATE
            reports.append({"cycle": assignment.cycle, "checkpoint": assignment.checkpoint,
                            "task": assignment.task, "num_samples": result.num_samples,
                            "metrics": result.metrics})
            if on_report is not None:
                on_report(assignment, result)
        return reports

    def stop(self) -> None:
        """End :meth:`participate` at its next wait (safe from another thread)."""
        self._stopped.set()

    def executor(self, plan_id: int, assignment: Assignment) -> PlanExecutor:
        """The plan's executor, downloaded once per job (a hosted plan never changes)."""
        if plan_id not in self._executors:
            download = self.transport.download("get-plan", {
                "worker_id": self.worker_id, "request_key": assignment.request_key,
                "plan_id": plan_id,
            })
            self._executors[plan_id] = PlanExecutor(Plan.from_bytes(download.content),
                                                    threads=self.client.threads)
        return self._executors[plan_id]


class EvaluationResult:
    """What an evaluation assignment reports: the checkpoint's ``metrics`` on local data
    (``accuracy`` for classification, ``loss``) and ``num_samples`` (examples scored)."""

    def __init__(self, metrics: dict[str, float], num_samples: int) -> None:
        self.metrics = metrics
        self.num_samples = num_samples

    def __repr__(self) -> str:
        return f"<EvaluationResult {self.metrics} on {self.num_samples} samples>"


class Assignment:
    """A place in one cycle: download the checkpoint and plan, train (or evaluate), report once.

    Attributes from the Node's answer: ``cycle``, ``checkpoint`` (number), ``client_config``,
    ``deadline`` (ISO 8601, the cycle's), ``timeout`` (seconds left to report when accepted: the
    assignment's lease, never past the deadline; a later report, checkpoint or plan download is
    refused with ``assignment_expired``), ``report_by`` (ISO 8601, the lease's end, from Nodes
    that send it), ``plans`` (name -> id), ``request_key``, ``task`` (``"train"``, or
    ``"evaluate"``: score the checkpoint with :meth:`evaluate` and report metrics only).
    """

    def __init__(self, job: Job, answer: dict[str, Any]) -> None:
        self.job = job
        self.answer = answer
        self.request_key: str = answer["request_key"]
        self.cycle: int = answer.get("cycle")
        self.checkpoint: int = answer.get("checkpoint")
        self.model_id = answer.get("model_id")
        self.plans: dict[str, int] = answer.get("plans") or {}
        self.client_config: dict[str, Any] = answer.get("client_config") or {}
        self.deadline: str | None = answer.get("deadline")
        self.timeout: float | None = answer.get("timeout")
        self.report_by: str | None = answer.get("report_by")
        self.task: str = answer.get("task") or TRAIN  # Nodes before evaluation send none
        # Set when the cycle aggregates securely: report() then runs the SecAgg rounds.
        self.secure_aggregation: dict[str, Any] | None = answer.get("secure_aggregation")
        self.reported = False
        self._parameters: dict[str, np.ndarray] | None = None

    def __repr__(self) -> str:
        return (f"<Assignment {self.job.model_name} v{self.job.version} cycle {self.cycle} "
                f"checkpoint {self.checkpoint}>")

    def parameters(self) -> dict[str, np.ndarray]:
        """The cycle's checkpoint as float32 arrays (downloaded once)."""
        if self._parameters is None:
            download = self.job.transport.download("get-model", {
                "worker_id": self.job.worker_id, "request_key": self.request_key,
                "model_id": self.model_id,
            })
            self._parameters = {n: np.array(a) for n, a in tensors.decode(download.content).items()}
        return self._parameters

    def executor(self, plan_name: str | None = None) -> PlanExecutor:
        """The executor of the named plan (default: ``training_plan``, or the only plan)."""
        if not self.plans:
            raise FedgridError("the assignment lists no plans; the model was hosted without one",
                               code="plan_unknown")
        if plan_name is None:
            plan_name = TRAINING_PLAN_NAME if TRAINING_PLAN_NAME in self.plans else next(iter(self.plans))
        if plan_name not in self.plans:
            raise FedgridError(f"no plan named {plan_name!r}; this model has {sorted(self.plans)}",
                               code="plan_unknown")
        return self.job.executor(int(self.plans[plan_name]), self)

    def training_options(self, **overrides: Any) -> dict[str, Any]:
        """Options for this run: explicit arguments, then ``client_config``, then the plan's defaults."""
        options: dict[str, Any] = {}
        for key, option in CLIENT_CONFIG_KEYS.items():
            if key in self.client_config and self.client_config[key] is not None:
                options[option] = self.client_config[key]
        options.update({k: v for k, v in overrides.items() if v is not None})
        return options

    def train(self, data: Any, *, batch_size: int | None = None, epochs: int | None = None,
              max_updates: int | None = None, learning_rate: float | None = None,
              shuffle: bool | None = None, seed: int | None = None, plan: str | None = None,
              progress: bool | None = None) -> TrainingResult:
        """Run the plan over local ``data`` starting from the cycle's checkpoint.

        ``data``: ``(features, labels)`` arrays, a mapping with ``features``/``labels``, an iterable
        of ``(features, labels)`` batches, or a torch ``Dataset``. Unset options come from the
        model's ``client_config`` (``batch_size``, ``epochs``, ``max_updates``, ``lr``), then from
        the plan. ``progress`` shows a bar on stderr (default: when stderr is a terminal).

        Returns the ``TrainingResult``: ``diff`` (start minus trained), ``num_samples``, ``metrics``
        (``loss`` and the plan's metrics, e.g. ``accuracy``), ``parameters``, ``updates``, ``losses``.
        """
        features, labels = as_arrays(data)
        executor = self.executor(plan)
        # Before ONNX Runtime: a mismatch is named in one line instead of failing inside a step.
        check_training_data(executor.plan.manifest, features, labels)
        options = self.training_options(batch_size=batch_size, epochs=epochs,
                                        max_updates=max_updates, learning_rate=learning_rate,
                                        shuffle=shuffle)
        if progress is None:
            progress = sys.stderr.isatty()
        bar = None
        if progress:
            bar = ProgressBar(_planned_updates(executor, len(features), options),
                              f"cycle {self.cycle}")
        result = train(
            executor, self.parameters(), features, labels,
            seed=secrets.randbits(32) if seed is None else seed,
            on_batch=bar.update if bar else None,
            threads=self.job.client.threads,
            **options,
        )
        if bar:
            bar.close()
        return result

    def evaluate(self, data: Any, *, plan: str | None = None) -> EvaluationResult:
        """Score the cycle's checkpoint on local ``data`` with the plan's forward graph, without
        training (an evaluation assignment's work; any assignment may call it).

        ``data`` as for :meth:`train`. Metrics: ``accuracy`` for classification and ``loss``,
        defined as the Node's held-out scores (``fedgrid_plans.scoring``)."""
        features, labels = as_arrays(data)
        executor = self.executor(plan)
        spec = forward_spec(executor.plan.manifest)
        if spec is None:
            raise FedgridError("the model's plan has no forward graph, so it cannot evaluate",
                               code="plan_not_evaluable")
        if len(features) == 0 or len(features) != len(labels):
            raise ValueError(f"need as many labels as features and at least one example (got "
                             f"{len(features)} and {len(labels)})")
        scored = score(executor, self.parameters(), features, labels, spec)
        num_samples = int(scored.pop("num_samples"))
        return EvaluationResult({k: float(v) for k, v in scored.items()}, num_samples)

    def report(self, result: TrainingResult | EvaluationResult | None = None, *,
               diff: dict[str, np.ndarray] | bytes | None = None, num_samples: int | None = None,
               metrics: dict[str, float] | None = None) -> dict[str, Any]:
        """Send the diff (from ``result``, or ``diff``/``num_samples``/``metrics`` given directly),
        encoded as ``client_config.diff_encoding`` says (float32, float16 or int8; bytes are sent
        as they are).

        Returns the Node's answer ``{"status": "success", "cycle"}``, sent only once the report is
        stored. If the answer is lost on the way back, the report is sent once more; a
        ``report_duplicate`` then proves the first one was stored (the Node says so even after the
        cycle closed), and counts as success. Raises :class:`~fedgrid.errors.ReportRefused` (e.g.
        ``report_duplicate``) or :class:`~fedgrid.errors.AssignmentExpired` (the cycle closed, or
        the assignment's lease ran out, first).
        """
        if result is not None:
            diff = getattr(result, "diff", None) if diff is None else diff
            num_samples = result.num_samples if num_samples is None else num_samples
            metrics = result.metrics if metrics is None else metrics
        if self.task == EVALUATE:
            # An evaluation reports metrics only; the Node refuses a diff here.
            if diff is not None:
                raise ValueError("this is an evaluation assignment: report the result of "
                                 "assignment.evaluate(data), without a diff")
            if num_samples is None or not _reportable(metrics):
                raise ValueError("an evaluation assignment reports an EvaluationResult, or "
                                 "metrics= and num_samples=")
            blobs = {}
        else:
            if diff is None or num_samples is None:
                raise ValueError("report() needs a TrainingResult, or diff= and num_samples=")
            if self.secure_aggregation is not None:
                from .secagg import report_securely

                plain = (tensors.decode(bytes(diff)) if isinstance(diff, bytes | bytearray)
                         else diff)
                answer = report_securely(self, plain)
                self.reported = True
                return answer
            body = diff if isinstance(diff, bytes | bytearray) else encode_diff(
                diff, self.client_config.get("diff_encoding"))
            blobs = {"diff": bytes(body)}
        fields = {
            "worker_id": self.job.worker_id,
            "request_key": self.request_key,
            "num_samples": int(num_samples),
            "metrics": _reportable(metrics),
        }
        try:
            answer = self.job.transport.call("report", fields, blobs=blobs)
        except NetworkUnreachable:
            # The answer may have been lost after the Node stored the report. Send it once more:
            # only this device holds the request key, so `report_duplicate` now means the first
            # attempt was stored (and it stands; the Node never overwrites a report).
            try:
                answer = self.job.transport.call("report", fields, blobs=blobs)
            except ReportRefused as refused:
                if refused.code != "report_duplicate":
                    raise
                answer = {"status": "success", "cycle": self.cycle, "recovered": True}
        self.reported = True
        return answer


class ProgressBar:
    """A one-line text progress bar on stderr (no dependency; redrawn at most 10 times a second)."""

    def __init__(self, total: int, label: str, stream: Any = None) -> None:
        self.total = max(total, 1)
        self.label = label
        self.stream = stream or sys.stderr
        self._drawn = 0.0

    def update(self, report: BatchReport) -> None:
        now = time.monotonic()
        if now - self._drawn < 0.1 and report.update < self.total:
            return
        self._drawn = now
        done = min(report.update, self.total)
        filled = int(30 * done / self.total)
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] "
                          f"{done}/{self.total} loss {report.loss:.4f}")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def _planned_updates(executor: PlanExecutor, count: int, options: dict[str, Any]) -> int:
    defaults = executor.plan.manifest.get("defaults", {})
    batch_size = int(options.get("batch_size") or defaults.get("batch_size") or 32)
    epochs = int(options.get("epochs") or defaults.get("epochs") or 1)
    updates = epochs * math.ceil(count / batch_size)
    cap = options.get("max_updates", defaults.get("max_updates"))
    return min(updates, int(cap)) if cap else updates


def _reportable(metrics: dict[str, float] | None) -> dict[str, float] | None:
    """The metrics the Node takes: finite numbers, without the plan's internal counters."""
    if not metrics:
        return None
    kept = {k: float(v) for k, v in metrics.items()
            if k != "num_samples" and isinstance(v, int | float) and math.isfinite(v)}
    return kept or None
