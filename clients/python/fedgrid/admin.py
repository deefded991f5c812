"""The researcher's side: host a model on a Node, watch its processes and cycles, fetch checkpoints,
pause, resume, stop and delete it.

Needs the Node's admin token. Hosting a PyTorch model compiles it first (torch installed); hosting
an already compiled plan (a plan file and its checkpoint) needs no torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fedgrid_plans import tensors
from fedgrid_plans.plan_file import Plan

from .errors import FedgridError
from .jobs import TRAINING_PLAN_NAME
from .model_names import UnknownModel, resolve_model
from .transport import Transport, open_transport


class Admin:
    """Management calls on one Node: ``Admin("http://localhost:5000", admin_token="...")``.

    ``url`` may be ``http(s)://`` or ``ws(s)://`` like :class:`~fedgrid.Client`'s.
    """

    def __init__(self, url: str, admin_token: str, *, retries: int = 5, backoff: float = 0.5,
                 timeout: float = 120.0) -> None:
        if not admin_token:
            raise ValueError("Admin needs the Node's admin token (--admin-token / GRID_ADMIN_TOKEN, "
                             "or the admin-token file in the Node's data directory)")
        self.url = url.rstrip("/")
        self.admin_token = admin_token
        self.transport: Transport = open_transport(self.url, retries=retries, backoff=backoff,
                                                   timeout=timeout)

    def _call(self, event: str, fields: dict[str, Any] | None = None,
              blobs: dict[str, bytes] | None = None) -> dict[str, Any]:
        return self.transport.call(event, fields, blobs=blobs, admin_token=self.admin_token)

    def host_training(self, model: Any, name: str, version: str = "1.0", *,
                      client_config: dict[str, Any] | None = None,
                      server_config: dict[str, Any] | None = None,
                      checkpoint: dict[str, np.ndarray] | bytes | str | Path | None = None,
                      example_batch: tuple | None = None,
                      averaging_plan: bytes | None = None,
                      evaluation_set: tuple[Any, Any] | None = None,
                      plan_name: str = TRAINING_PLAN_NAME) -> dict[str, Any]:
        """Host ``model`` for training as ``name`` ``version``; returns the Node's answer
        (``process_id``, ``model_id``, ``plans``, ``checkpoint``).

        ``model`` is one of:

        - a compiled plan (``fedgrid_plans.compiler.CompiledPlan``; its initial parameters are the
          checkpoint unless ``checkpoint`` is given);
        - a zoo model name such as ``"digits_mlp"`` (compiled here; needs torch);
        - a ``torch.nn.Module`` with ``example_batch=(features, labels)`` (compiled here; needs torch);
        - plan file bytes, a :class:`Plan`, or a path to a ``.fgplan`` file, with ``checkpoint``
          (arrays by parameter name, safetensors bytes, or a path to a ``.safetensors`` file).

        ``client_config`` reaches every device (``batch_size``, ``epochs``, ``max_updates``, ``lr``);
        ``server_config`` sets the cycle policy (``max_diffs``, ``min_diffs``, ``max_workers``,
        ``num_cycles``, ``cycle_length`` seconds, ``strategy``, ``authentication``...).
        ``evaluation_set`` (``(features, labels)``, as :meth:`upload_evaluation_set` takes them)
        is sent with the hosting: a set the plan cannot score refuses the hosting itself.
        """
        plan_bytes, initial = _plan_and_checkpoint(model, example_batch)
        if checkpoint is not None:
            initial = checkpoint
        if initial is None:
            raise ValueError("hosting a plan file needs checkpoint= (the model's initial parameters)")
        blobs = {"model": _checkpoint_bytes(initial), f"plans/{plan_name}": plan_bytes}
        if averaging_plan is not None:
            blobs["averaging_plan"] = averaging_plan
        if evaluation_set is not None:
            blobs["evaluation_set"] = _evaluation_set_bytes(*evaluation_set)
        return self._call("host-training", {
            "name": name,
            "version": str(version),
            "client_config": client_config or {},
            "server_config": server_config or {},
        }, blobs)

    def upload_evaluation_set(self, name: str, features: Any, labels: Any,
                              version: str | None = None) -> dict[str, Any]:
        """Give the Node a held-out test set for ``name``: it scores every checkpoint (the hosted
        one too) on it in the background, shown as ``test_metrics`` in :meth:`cycles`.

        ``features`` in the plan's feature shape, one row per example; ``labels`` class indices
        (or float targets shaped like the model's output). Sent as safetensors, never as JSON.
        Refusals: ``evaluation_set_invalid``, ``evaluation_set_mismatch``,
        ``evaluation_set_too_large``, ``plan_not_evaluable`` (all ``RequestInvalid``).
        Returns ``{"status", "model", "version", "num_samples", "checkpoints_to_score"}``."""
        return self._call("evaluation-set", {"name": name, "version": version},
                          {"evaluation_set": _evaluation_set_bytes(features, labels)})

    def processes(self) -> list[dict[str, Any]]:
        """Every hosted process: ``id``, ``model``, ``version``, ``status``, configs, current ``cycle``."""
        return self._call("processes")["processes"]

    def checkpoints(self, name: str, version: str | None = None) -> dict[str, Any]:
        """``{"model", "version", "checkpoints": [{"number", "created_at"}], "latest"}``."""
        return self._call("checkpoints", {"name": name, "version": version})

    def cycles(self, name: str, version: str | None = None) -> list[dict[str, Any]]:
        """Per-cycle records: ``sequence``, ``status``, ``checkpoint``, times, ``accepted``,
        ``reported``, ``dropped``, ``rejected`` by reason, ``client_metrics``, ``num_samples``,
        ``aggregation_seconds``, and the evaluation of the checkpoint the cycle produced:
        ``test_metrics`` (held-out) and ``federated_metrics`` (from evaluating devices). Needs a Node that serves ``GET /model-centric/cycles``."""
        try:
            return self._call("cycles", {"name": name, "version": version})["cycles"]
        except FedgridError as exc:
            if exc.code in ("not_found", "unknown_event"):
                raise type(exc)(  # the table's class for the code (RequestInvalid)
                    "this Node does not list cycles (no /model-centric/cycles); upgrade the Node, "
                    "or use processes() for the current cycle", code=exc.code, status=exc.status,
                ) from None
            raise

    # Process control. Each returns the Node's answer: ``model``, ``version``, ``process_status``
    # (after the call) and ``changed`` (false when it already was so: the calls are idempotent).
    # A control the process's status does not allow raises RequestInvalid with the code
    # ``process_state_conflict`` (``details["process_status"]`` says what it is).

    def pause(self, name: str, version: str | None = None) -> dict[str, Any]:
        """Pause training: the open cycle's clock stops (no deadline, no lease expiry, no close at
        the goal), devices already training may still report, and new cycle-requests are turned
        away with ``process_paused`` and a ``timeout`` to ask again after."""
        return self._call("pause-process", {"name": name, "version": version})

    def resume(self, name: str, version: str | None = None) -> dict[str, Any]:
        """Resume a paused process: its open cycle continues with a fresh deadline."""
        return self._call("resume-process", {"name": name, "version": version})

    def stop(self, name: str, version: str | None = None) -> dict[str, Any]:
        """Finish training now: the open cycle is aggregated if it has ``min_diffs`` reports (else
        abandoned) and no cycle follows; the latest checkpoint is the result. ``cycle`` in the
        answer says how the open cycle closed (``sequence``, ``status``, ``checkpoint``)."""
        return self._call("stop-process", {"name": name, "version": version})

    def delete(self, name: str, version: str | None = None, *, force: bool = False) -> dict[str, Any]:
        """Delete a paused, stopped or finished process with its cycles, reports, checkpoints and
        plans (an active one only with ``force``); its name and version may be hosted again.
        Download the checkpoints you want to keep first."""
        return self._call("delete-process", {"name": name, "version": version, "force": force})

    def evaluations(self, name: str, version: str | None = None) -> list[dict[str, Any]]:
        """Every evaluated checkpoint, the hosted one too: ``{"number", "test_metrics"
        (held-out score, or None), "federated_metrics" ({"metrics", "num_samples", "reports"},
        or None)}``, by number."""
        return self._call("cycles", {"name": name, "version": version}).get("checkpoints", [])

    def retrieve_model(self, name: str, version: str | None = None,
                       checkpoint: int | str = "latest") -> dict[str, np.ndarray]:
        """A checkpoint's parameters as float32 numpy arrays, by name (``checkpoint``: number or
        ``"latest"``)."""
        download = self.transport.download("retrieve-model", {
            "name": name, "version": version, "checkpoint": checkpoint,
        }, admin_token=self.admin_token)
        return {n: np.array(a) for n, a in tensors.decode(download.content).items()}

    def retrieve_state_dict(self, name: str, version: str | None = None,
                            checkpoint: int | str = "latest") -> dict[str, Any]:
        """Like :meth:`retrieve_model`, as a torch ``state_dict`` (needs torch): load it with
        ``model.load_state_dict(...)`` into the module the plan was compiled from."""
        try:
            import torch
        except ImportError:
            raise ImportError("retrieve_state_dict needs torch; retrieve_model returns numpy arrays") from None
        arrays = self.retrieve_model(name, version, checkpoint)
        return {n: torch.from_numpy(a) for n, a in arrays.items()}

    def download_checkpoint(self, name: str, version: str | None = None,
                            checkpoint: int | str = "latest") -> bytes:
        """A checkpoint's safetensors bytes, as stored (for saving to a file)."""
        return self.transport.download("retrieve-model", {
            "name": name, "version": version, "checkpoint": checkpoint,
        }, admin_token=self.admin_token).content

    def status(self) -> dict[str, Any]:
        """The Node's ``/status`` (kind, id, version, address, network)."""
        return self.transport.get_json("/status", event="status")

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Admin:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def compile_model(model: Any, example_batch: tuple | None = None, **options: Any) -> Any:
    """Compile a zoo name or a torch module into a ``CompiledPlan`` (needs torch)."""
    try:
        from fedgrid_plans.compiler import compile_plan
        from fedgrid_plans.zoo import compile_zoo_model
    except ImportError as exc:
        raise ImportError(f"compiling a model needs torch ({exc}); host a compiled plan file "
                          "with its checkpoint instead") from None
    if isinstance(model, str):
        return compile_zoo_model(model, **options)
    if example_batch is None:
        raise ValueError("compiling a torch module needs example_batch=(features, labels)")
    return compile_plan(model, example_batch=example_batch, **options)


def _plan_and_checkpoint(model: Any, example_batch: tuple | None) -> tuple[bytes, Any]:
    if isinstance(model, bytes | bytearray):
        return bytes(model), None
    if isinstance(model, Plan):
        return model.to_bytes(), None
    if isinstance(model, str):
        model = resolve_model(model)  # an existing file's Path, or a zoo name
    if isinstance(model, Path):
        if not model.is_file():
            raise UnknownModel(f"no plan file {model}")
        return model.read_bytes(), None
    if hasattr(model, "to_bytes") and hasattr(model, "checkpoint"):  # a CompiledPlan
        return model.to_bytes(), model.checkpoint()
    if isinstance(model, str) or hasattr(model, "parameters"):  # zoo name or torch module
        compiled = compile_model(model, example_batch)
        return compiled.to_bytes(), compiled.checkpoint()
    raise TypeError(f"cannot host a {type(model).__name__}: pass a CompiledPlan, a zoo name, a "
                    "torch module with example_batch, or plan bytes with checkpoint=")


def _checkpoint_bytes(checkpoint: Any) -> bytes:
    if isinstance(checkpoint, bytes | bytearray):
        return bytes(checkpoint)
    if isinstance(checkpoint, str | Path):
        return Path(checkpoint).read_bytes()
    return tensors.encode({n: np.asarray(v, dtype=np.float32) for n, v in checkpoint.items()})


def _evaluation_set_bytes(features: Any, labels: Any) -> bytes:
    """An evaluation set as the Node takes it: safetensors ``features`` (float) and ``labels``
    (int64 class indices, or float targets)."""
    features = np.asarray(features)
    labels = np.asarray(labels)
    return tensors.encode({
        "features": features.astype(np.float32) if features.dtype.kind != "f" else features,
        "labels": labels.astype(np.int64) if labels.dtype.kind in "iub" else labels,
    })
