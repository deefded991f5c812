"""`host-training`: check everything first, then create the process in one transaction.

PyGrid created the process, then the plans, then the checkpoint, each in its own commit, so a bad
plan left a half-created process behind that blocked the name forever. Here nothing is written
until every part has been validated, and the write itself is a single transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from fedgrid_plans import tensors
from fedgrid_protocol.errors import ApiError, invalid_request

from ..cycles.diff_encoding import SCALE_SUFFIX
from ..cycles.engine import CycleEngine
from ..cycles.server_config import ServerConfigError, check_client_config, check_server_config
from ..db.database import Database
from ..db.models import Checkpoint, Model, Plan, Process
from .evaluation import store_evaluation_set

MAX_NAME_LENGTH = 255
MAX_VERSION_LENGTH = 64


def _check_checkpoint(data: Any) -> dict:
    if not isinstance(data, bytes | bytearray) or not data:
        raise invalid_request("field 'model' must be the model checkpoint (safetensors bytes)")
    try:
        checkpoint = tensors.decode(data)
    except tensors.TensorFormatError as exc:
        raise ApiError("checkpoint_invalid", f"model is not a safetensors checkpoint: {exc}") from None
    if not checkpoint:
        raise ApiError("checkpoint_invalid", "model checkpoint holds no tensors")
    for name, value in checkpoint.items():
        if value.dtype.kind != "f":
            raise ApiError("checkpoint_invalid", f"parameter {name!r} is not floating point")
        if name.endswith(SCALE_SUFFIX):  # int8 diffs name each tensor's scale so
            raise ApiError("checkpoint_invalid",
                           f"parameter {name!r}: names ending in {SCALE_SUFFIX} are reserved")
    return checkpoint


def _check_plan(name: str, data: Any, checkpoint: Mapping, *, averaging: bool = False) -> str:
    """Validate one plan against the checkpoint; returns its content hash.

    An averaging plan is a plan file that holds an ``average`` graph (plans/SPEC.md).
    """
    from fedgrid_plans import validation

    if not isinstance(data, bytes | bytearray) or not data:
        raise invalid_request(f"plan {name!r} must be plan file bytes")
    try:
        plan = validation.validate_plan(bytes(data), checkpoint)
    except validation.PlanValidationError as exc:
        raise ApiError(
            "plan_invalid", f"plan {name!r} was refused: {exc}", 400,
            details={"plan": name, "reason": exc.code},
        ) from None
    if averaging and "average" not in plan.graphs:
        raise ApiError("plan_invalid", f"plan {name!r} has no 'average' graph", 400,
                       details={"plan": name, "reason": "plan_graph_missing"})
    return plan.manifest.get("content_hash") or hashlib.sha256(data).hexdigest()


def host_training(db: Database, engine: CycleEngine, data: dict[str, Any]) -> dict[str, Any]:
    # Both configs are checked against fedgrid_protocol.configs: a misspelt key, a wrong type or
    # an out-of-range value is refused with the field named, never ignored.
    try:
        client_settings = check_client_config(data.get("client_config"))
        server_config = check_server_config(data.get("server_config"))
    except ServerConfigError as exc:
        raise exc.api_error() from None
    if engine.cluster is not None and server_config.secure_aggregation is not None:
        # A secure cycle's rounds are stored, but checked, closed and timed by one process
        # (secagg_cycle.py; docs/secure-aggregation.md#durability says what replicas lack).
        raise ApiError("server_config_invalid",
                       "secure_aggregation is not available on replicas (--cluster): host it on "
                       "a single Node", 400, details={"field": "server_config.secure_aggregation"})
    # PyGrid put name and version inside client_config; accept them at either place.
    name = data.get("name") or client_settings.name
    version = data.get("version") or client_settings.version
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_LENGTH:
        raise invalid_request("a model name (field 'name') of 1-255 characters is required")
    if not isinstance(version, str) or not version or len(version) > MAX_VERSION_LENGTH:
        raise invalid_request("a model version (field 'version') of 1-64 characters is required")
    client_config = {**client_settings.stored(), "name": name, "version": version}

    checkpoint_bytes = data.get("model")
    checkpoint = _check_checkpoint(checkpoint_bytes)
    plans = data.get("plans")
    if not isinstance(plans, dict) or not plans:
        raise invalid_request("at least one client plan is required in 'plans' (name -> plan file)")
    plan_rows = []
    for plan_name, plan_bytes in plans.items():
        plan_hash = _check_plan(plan_name, plan_bytes, checkpoint)
        plan_rows.append(Plan(name=plan_name, kind="client", content_hash=plan_hash, data=bytes(plan_bytes)))
    averaging_plan = data.get("averaging_plan")
    if server_config.strategy["name"] == "hosted_averaging_plan" and not averaging_plan:
        raise ApiError("server_config_invalid",
                       "strategy 'hosted_averaging_plan' needs an averaging_plan to be hosted", 400,
                       details={"field": "server_config.strategy"})
    if averaging_plan:
        plan_hash = _check_plan("averaging_plan", averaging_plan, checkpoint, averaging=True)
        plan_rows.append(
            Plan(name="averaging_plan", kind="averaging", content_hash=plan_hash, data=bytes(averaging_plan))
        )

    try:
        with db.session() as session:
            exists = session.scalar(
                select(Process.id).where(Process.name == name, Process.version == version)
            )
            if exists is not None:
                raise _process_exists(name, version)
            process = Process(
                name=name,
                version=version,
                client_config=client_config,
                # Normalised (a strategy name is stored as {"name": ...}), as the researcher set it.
                server_config=server_config.stored(),
                status="active",
            )
            process.plans = plan_rows
            process.model = Model(checkpoints=[Checkpoint(number=1, data=bytes(checkpoint_bytes))])
            session.add(process)
            engine.open_first_cycle(session, process, server_config)
            session.flush()
            process_id, model_id = process.id, process.model.id
            if data.get("evaluation_set") is not None:
                # Checked against the plans just added; a refusal rolls the hosting back.
                store_evaluation_set(session, process_id, data["evaluation_set"])
            plan_ids = {plan.name: plan.id for plan in plan_rows if plan.kind == "client"}
    except IntegrityError:
        # Two hosts of the same name/version raced; the database's unique constraint decided.
        raise _process_exists(name, version) from None
    engine.track_hosted(process_id)
    if data.get("evaluation_set") is not None:
        engine.held_out.schedule(process_id)  # checkpoint 1's score, in the background
    return {
        "status": "success",
        "process_id": process_id,
        "model": name,
        "version": version,
        "model_id": model_id,
        "plans": plan_ids,
        "checkpoint": 1,
    }


def _process_exists(name: str, version: str) -> ApiError:
    return ApiError(
        "process_exists",
        f"model {name!r} version {version!r} is already hosted; host a new version instead",
        409,
    )
