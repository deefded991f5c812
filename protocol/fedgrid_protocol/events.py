"""The model-centric events: what each one takes and what it answers, with types and bounds.

One model per event's request (`extra="forbid"`: a misspelt field is refused, not ignored) and
one per answer. Servers validate every request with these before a handler runs, over HTTP and
WebSocket alike, and generate their OpenAPI documents from them (`openapi.py`); the SDKs send
exactly these fields.

Numbers arrive as JSON numbers, or as strings from HTTP query strings and multipart forms, so the
models validate in pydantic's lax mode for numbers: "5" is 5, "five" is refused. Strings are never
made up from other types, except a version (PyGrid clients send `1` for "1").
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    StringConstraints,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

# Text a person or a device chose: no control characters (CR/LF in a name broke downloads'
# Content-Disposition), bounded in length.
NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f]*$"
MAX_METRICS = 32
MAX_NUM_SAMPLES = 2**31 - 1
MAX_WAIT_SECONDS = 30
# Database ids and checkpoint numbers: the Node's INTEGER columns, 32-bit on PostgreSQL (a larger
# id reached the database and failed there: a 500 on PostgreSQL only).
MAX_ID = 2**31 - 1


def _version_text(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _not_bool(value: Any) -> Any:
    # pydantic's lax mode reads true as 1; a boolean is never a count, an id or a number here.
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    return value


def _blob(value: Any) -> Any:
    if not isinstance(value, bytes | bytearray | memoryview) or not len(value):
        raise ValueError("must be non-empty bytes (a file part, a binary body or a frame blob)")
    return value


Name = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=NO_CONTROL_CHARACTERS)]
# Constraints come before validators in these: pydantic then puts them in the JSON Schema too.
Version = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=NO_CONTROL_CHARACTERS),
    BeforeValidator(_version_text),
]
WorkerId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_-]+$")]
RequestKey = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[0-9A-Za-z_-]+$")
]
Token = Annotated[str, StringConstraints(max_length=16384, pattern=NO_CONTROL_CHARACTERS)]
Id = Annotated[int, Field(ge=1, le=MAX_ID), BeforeValidator(_not_bool)]
Speed = Annotated[float, Field(ge=0), BeforeValidator(_not_bool), AfterValidator(_finite)]
Blob = Annotated[Any, PlainValidator(_blob), WithJsonSchema({"type": "string", "format": "binary"})]
Iso8601 = Annotated[str, Field(description="ISO 8601 UTC, e.g. 2026-11-26T18:00:00.000000Z")]



class Payload(BaseModel):
    """Unknown fields are refused, naming them: a typo must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# ----------------------------------------------------------------------------- requests


class HostTrainingRequest(Payload):
    """Host a model (admin). Over HTTP: multipart, plans as files `plans[<name>]`."""

    name: Name | None = Field(None, description="the model's name (or client_config.name, PyGrid)")
    version: Version | None = Field(None, description="its version (or client_config.version)")
    model: Blob = Field(description="checkpoint 1: safetensors of float tensors")
    plans: dict[Name, Blob] = Field(default_factory=dict, description="client plans by name")
    averaging_plan: Blob | None = Field(None, description="PyGrid's hosted averaging plan")
    client_config: dict[str, Any] | None = Field(None, description="sent to devices (ClientConfig)")
    server_config: dict[str, Any] | None = Field(None, description="the cycle policy (ServerConfig)")
    protocols: dict[str, Any] | None = Field(
        None, description="PyGrid's SMPC protocols: accepted for compatibility, ignored"
    )
    evaluation_set: Blob | None = Field(
        None, description="optional held-out test set (safetensors `features`, `labels`), as "
                          "for the evaluation-set event"
    )


class AuthenticateRequest(Payload):
    model_name: Name
    model_version: Version | None = None
    auth_token: Token | None = Field(None, description="the device token, when the model needs one")


class CycleRequest(Payload):
    worker_id: WorkerId
    model: Name
    version: Version | None = None
    ping: Speed | None = Field(None, description="milliseconds")
    download: Speed | None = Field(None, description="Mbit/s")
    upload: Speed | None = Field(None, description="Mbit/s")
    wait: Annotated[float, Field(ge=0, le=MAX_WAIT_SECONDS), BeforeValidator(_not_bool)] | None = Field(
        None, description="seconds the Node may hold the request until a place opens (long-poll)"
    )
    notify: bool | None = Field(
        None, description="WebSocket only: push place-available to this socket when rejected"
    )


class AssignmentRequest(Payload):
    worker_id: WorkerId
    request_key: RequestKey


class GetModelRequest(AssignmentRequest):
    model_id: Id | None = None


class GetPlanRequest(AssignmentRequest):
    plan_id: Id
    receive_operations_as: Literal["list", "torchscript", "tfjs"] | None = Field(
        None, description="PyGrid's plan formats: accepted for compatibility; the answer is "
                          "always the Fedgrid plan file"
    )


class ReportRequest(AssignmentRequest):
    diff: Blob | None = Field(
        None, description="start parameters − trained parameters, safetensors; required for a "
                          "training assignment, refused for an evaluation assignment"
    )
    num_samples: Annotated[int, Field(ge=1, le=MAX_NUM_SAMPLES), BeforeValidator(_not_bool)] = Field(
        description="the samples trained on (evaluated on, for an evaluation assignment): the "
                    "report's weight in the average"
    )
    metrics: dict[Annotated[str, StringConstraints(max_length=64)],
                  Annotated[float, BeforeValidator(_not_bool), AfterValidator(_finite)]] | None = Field(
        None, max_length=MAX_METRICS, description="finite numbers, e.g. loss and accuracy"
    )


# Secure aggregation (docs/secure-aggregation.md). Devices are named by their index in the
# cohort (1..n); JSON object keys are strings, so an index key is its decimal text.
CohortIndex = Annotated[str, StringConstraints(min_length=1, max_length=5, pattern=r"^[1-9][0-9]*$")]
MAX_NEIGHBOURS = 1024


class SecAggRoundRequest(AssignmentRequest):
    wait: Annotated[float, Field(ge=0, le=MAX_WAIT_SECONDS), BeforeValidator(_not_bool)] | None = Field(
        None, description="seconds the Node may hold the request until the round changes")
    roster: Literal["all", "neighbours"] = Field(
        "all", description="share-keys: whose public keys the answer's roster carries: every "
                           "device that advertised keys (`all`, what older SDKs expect) or this "
                           "device's and its neighbours' (`neighbours`: all a device uses)")


# The secure rounds' bytes travel as one binary field per message (fedgrid_protocol.secagg.wire
# has the layouts). The JSON forms with base64 values (`c_public`/`s_public`, and `boxes` or
# `shares` as objects) are what older SDKs send: accepted for one more release.
_LEGACY = "deprecated (older SDKs): "


class SecAggAdvertiseKeysRequest(AssignmentRequest):
    c_public: Blob | None = Field(None, description=_LEGACY + "the c public key alone")
    s_public: Blob | None = Field(None, description=_LEGACY + "the s public key alone")
    # Last, so that its check sees the legacy fields; checked when absent too.
    public_keys: Blob | None = Field(None, validate_default=True,
                              description="the c public key (X25519, 32 bytes: share boxes are "
                                          "agreed with it) then the s public key (32 bytes: "
                                          "masks are agreed with it); the body")

    @field_validator("public_keys")
    @classmethod
    def _one_form(cls, keys: Any, info: ValidationInfo) -> Any:
        legacy = [info.data.get(name) is not None for name in ("c_public", "s_public")]
        if (keys is not None) == any(legacy) or any(legacy) != all(legacy):
            raise ValueError("is required (64 bytes), unless both c_public and s_public are "
                             "sent (older SDKs), and not together with them")
        return keys


_ENTRIES_SCHEMA = {
    "type": "string", "format": "binary",
    "description": "entries by increasing device index: index (8 bytes big-endian), length "
                   "(4 bytes big-endian), bytes"}
SecAggEntries = Annotated[Any, PlainValidator(_blob), WithJsonSchema(_ENTRIES_SCHEMA)]


LegacyByIndex = Annotated[dict[CohortIndex, Blob], Field(max_length=MAX_NEIGHBOURS)]
# Told apart by shape, so that a refusal speaks of the form that was sent.
# Documented as the entries alone: the legacy object only comes in the JSON form, which the
# OpenAPI document describes on its own (a multipart schema offering an object of binary strings
# is one that fuzzers, schemathesis among them, cannot generate).
EntriesOrLegacy = Annotated[
    Annotated[SecAggEntries, Tag("entries")] | Annotated[LegacyByIndex, Tag("object")],
    Discriminator(lambda value: "object" if isinstance(value, dict) else "entries"),
    WithJsonSchema(_ENTRIES_SCHEMA),
]


class SecAggShareKeysRequest(AssignmentRequest):
    boxes: EntriesOrLegacy = Field(
        description="neighbour index -> its AES-GCM share box, as entries (the body); "
                    + _LEGACY + "an object of them")


class SecAggMaskedInputRequest(AssignmentRequest):
    masked_input: Blob = Field(description="the masked, quantised update: little-endian uint32 "
                                           "words, the model's tensors by name, row-major")


class SecAggUnmaskRequest(AssignmentRequest):
    shares: EntriesOrLegacy = Field(
        description="neighbour index -> the Shamir share (66 bytes) of its self-mask seed "
                    "(a survivor) or of its mask key (a device that dropped), as entries (the "
                    "body); " + _LEGACY + "an object of them")


class ModelQuery(Payload):
    name: Name
    version: Version | None = None


class RetrieveModelRequest(ModelQuery):
    checkpoint: Id | Literal["latest"] | None = Field(None, description="a number, or latest")


class ProcessesRequest(Payload):
    pass


class ProcessControlRequest(ModelQuery):
    """Pause, resume or stop a hosted process (admin). No version: the newest one by that name."""


class DeleteProcessRequest(ModelQuery):
    force: bool = Field(False, description="delete even an active process (its open cycle and "
                                           "the unreported work in it are dropped)")


class EvaluationSetRequest(ModelQuery):
    """Give the Node a held-out test set for a hosted model (admin). Over HTTP: the body is the
    safetensors file, `name` and `version` in the query string."""

    evaluation_set: Blob = Field(
        description="safetensors holding `features` (the plan's feature shape, one row per "
                    "example) and `labels` (class indices, or targets shaped like the output)"
    )


# ----------------------------------------------------------------------------- answers


class Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class HostTrainingAnswer(Answer):
    status: Literal["success"]
    model: str
    version: str
    process_id: int | None = None


class AuthenticateAnswer(Answer):
    status: Literal["success"]
    worker_id: str
    model: str
    version: str
    requires_speed_test: bool


class AcceptedAnswer(Answer):
    status: Literal["accepted"]
    request_key: str
    model: str
    version: str
    model_id: int
    plans: dict[str, int]
    client_config: dict[str, Any]
    cycle: int
    checkpoint: int
    deadline: Iso8601
    timeout: float = Field(description="seconds left to report: the assignment's lease")
    report_by: Iso8601
    task: Literal["train", "evaluate"] = Field(
        "train", description="`evaluate`: run the plan's forward graph on local data without "
                             "training and report metrics and num_samples only, no diff")
    secure_aggregation: dict[str, Any] | None = Field(
        None, description="present when the cycle aggregates securely: its SecAgg+ parameters "
                          "(server_config.secure_aggregation's keys) and, with differential "
                          "privacy, `clip_norm`: the L2 norm the device clips its whole update to "
                          "before quantising it (`SecureCycleSettings`); the device runs the "
                          "secagg rounds instead of `report`")


class RejectedAnswer(Answer):
    status: Literal["rejected"]
    reason: str = Field(description="cycle_full, not_selected, worker_cooling_down, "
                                    "already_reported, download_too_slow, upload_too_slow, "
                                    "ping_too_high, process_paused (ask again after timeout), "
                                    "training_finished, training_stopped (never ask again)")
    timeout: float | None = Field(None, description="seconds until asking again is worthwhile")
    model: str
    version: str


class ReportAnswer(Answer):
    status: Literal["success"]
    cycle: int


SecAggRoundName = Literal["cohort", "advertise-keys", "share-keys", "masked-input", "unmask",
                          "done"]


class SecAggRoundAnswer(Answer):
    """The secure round the cycle is in, and what this device needs for it (bytes: base64)."""

    status: Literal["success"]
    round: SecAggRoundName = Field(description="`cohort`: places are still being taken; "
                                               "`done`: the sum is unmasked")
    sent: bool = Field(description="this device already sent its message for this round")
    timeout: float | None = Field(None, description="seconds until the round closes")
    index: int | None = Field(None, description="this device's index in the cohort")
    cohort: int | None = Field(None, description="devices in the cohort")
    roster: dict[str, list[str]] | None = Field(
        None, description="share-keys: index -> [c_public, s_public] of every device that "
                          "advertised keys, or with the request's `roster: neighbours` of this "
                          "device and its neighbours")
    advertised: int | None = Field(None, description="share-keys: how many devices advertised "
                                                     "keys (the count k and t follow from)")
    neighbours: list[int] | None = Field(None, description="share-keys: this device's neighbours")
    boxes: dict[str, str] | None = Field(None, description="masked-input: sender index -> its "
                                                           "share box for this device")
    survivors: list[int] | None = Field(None, description="unmask: who sent a masked input")
    dropped: list[int] | None = Field(None, description="unmask: who shared keys but sent none")


class SecAggReceivedAnswer(Answer):
    status: Literal["success"]
    round: SecAggRoundName


ProcessStatusName = Literal["active", "paused", "stopped", "finished"]


class ProcessControlAnswer(Answer):
    status: Literal["success"]
    model: str
    version: str
    process_status: ProcessStatusName = Field(description="the process's status after the call")
    changed: bool = Field(description="false when the process already was in that state "
                                      "(the call is idempotent)")
    cycle: dict[str, Any] | None = Field(
        None, description="stop only: the cycle it closed, {sequence, status (completed or "
                          "abandoned), checkpoint}; null when none was open")


class DeleteProcessAnswer(Answer):
    status: Literal["success"]
    model: str
    version: str
    deleted: Literal[True]


class EvaluationSetAnswer(Answer):
    status: Literal["success"]
    model: str
    version: str
    num_samples: int
    checkpoints_to_score: int = Field(description="checkpoints the Node will now score, "
                                                  "asynchronously")


class ErrorBody(BaseModel):
    code: str
    message: str
    status: int
    details: dict[str, Any] | None = None


class ErrorAnswer(BaseModel):
    error: ErrorBody


# ----------------------------------------------------------------------------- the events


class Event(BaseModel):
    """How an event travels: its request model, its answer, HTTP method, admin, binary fields."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    name: str
    summary: str
    method: Literal["GET", "POST"]
    request: type[Payload]
    answer: Any  # a model, a union of models, or "binary"
    admin: bool = False
    # Fields that carry bytes: multipart files over HTTP, blobs in binary WebSocket frames,
    # base64 strings only in PyGrid's legacy JSON forms.
    binary_fields: tuple[str, ...] = ()
    # Fields that carry bytes only in an older JSON form, as base64 (a newer binary field
    # replaced them): still decoded from JSON, never a body, a file or a blob.
    legacy_base64_fields: tuple[str, ...] = ()
    errors: tuple[int, ...] = (400,)
    # The error code for a field that fails validation, where it is not `invalid_request`.
    field_codes: dict[str, str] = {}


BINARY = "binary"

EVENTS: dict[str, Event] = {
    event.name: event
    for event in (
        Event(name="host-training", method="POST", admin=True, request=HostTrainingRequest,
              answer=HostTrainingAnswer,
              binary_fields=("model", "plans", "averaging_plan", "evaluation_set"),
              field_codes={"client_config": "client_config_invalid",
                           "server_config": "server_config_invalid"},
              summary="Host a model: checkpoint, client plans, optional averaging plan, configs",
              errors=(400, 401, 403, 409, 413)),
        Event(name="authenticate", method="POST", request=AuthenticateRequest,
              answer=AuthenticateAnswer, summary="Get a worker id bound to one hosted model",
              errors=(400, 401, 404, 503)),
        Event(name="cycle-request", method="POST", request=CycleRequest,
              answer=AcceptedAnswer | RejectedAnswer,
              summary="Ask for a place in the current cycle (accepted, or rejected with timeout)",
              errors=(400, 403, 404, 503)),
        Event(name="get-model", method="GET", request=GetModelRequest, answer=BINARY,
              summary="The assignment's checkpoint (safetensors)", errors=(400, 403, 404, 409)),
        Event(name="get-plan", method="GET", request=GetPlanRequest, answer=BINARY,
              summary="A plan file of the assignment's model", errors=(400, 403, 404, 409)),
        Event(name="report", method="POST", request=ReportRequest, answer=ReportAnswer,
              binary_fields=("diff",),
              field_codes={"num_samples": "num_samples_invalid", "metrics": "metrics_invalid"},
              summary="Report a diff (the body; the other fields in the query string), or an "
                      "evaluation assignment's metrics without a diff",
              errors=(400, 403, 404, 409, 413)),
        Event(name="retrieve-model", method="GET", admin=True, request=RetrieveModelRequest,
              answer=BINARY, summary="Download a checkpoint (latest by default)",
              errors=(400, 401, 403, 404)),
        Event(name="checkpoints", method="GET", admin=True, request=ModelQuery, answer=Answer,
              summary="A hosted model's checkpoints", errors=(400, 401, 403, 404)),
        Event(name="processes", method="GET", admin=True, request=ProcessesRequest, answer=Answer,
              summary="Every hosted model with its configs and current cycle",
              errors=(401, 403)),
        Event(name="cycles", method="GET", admin=True, request=ModelQuery, answer=Answer,
              summary="Per-cycle figures of a hosted model (the open one live), with each "
                      "checkpoint's held-out and federated evaluation",
              errors=(400, 401, 403, 404)),
        Event(name="pause-process", method="POST", admin=True, request=ProcessControlRequest,
              answer=ProcessControlAnswer,
              summary="Pause a process: its open cycle's clock stops, new cycle-requests are "
                      "rejected with process_paused; accepted devices may still report",
              errors=(400, 401, 403, 404, 409)),
        Event(name="resume-process", method="POST", admin=True, request=ProcessControlRequest,
              answer=ProcessControlAnswer,
              summary="Resume a paused process: its open cycle continues with a fresh deadline",
              errors=(400, 401, 403, 404, 409)),
        Event(name="stop-process", method="POST", admin=True, request=ProcessControlRequest,
              answer=ProcessControlAnswer,
              summary="Finish a process now: its open cycle is aggregated if it has min_diffs "
                      "reports (else abandoned) and no cycle follows",
              errors=(400, 401, 403, 404, 409)),
        Event(name="delete-process", method="POST", admin=True, request=DeleteProcessRequest,
              answer=DeleteProcessAnswer,
              summary="Delete a paused, stopped or finished process (any with force) and all its "
                      "cycles, reports, checkpoints and plans; its name and version are free again",
              errors=(400, 401, 403, 404, 409)),
        Event(name="evaluation-set", method="POST", admin=True, request=EvaluationSetRequest,
              answer=EvaluationSetAnswer, binary_fields=("evaluation_set",),
              summary="Give a hosted model a held-out test set: the Node scores every "
                      "checkpoint with it (the body is the safetensors file)",
              errors=(400, 401, 403, 404, 413)),
        Event(name="secagg-round", method="POST", request=SecAggRoundRequest,
              answer=SecAggRoundAnswer,
              summary="Secure aggregation: the cycle's round and what this device needs for it "
                      "(long-poll with `wait`)",
              errors=(400, 403, 404, 409)),
        Event(name="secagg-advertise-keys", method="POST", request=SecAggAdvertiseKeysRequest,
              answer=SecAggReceivedAnswer, binary_fields=("public_keys",),
              legacy_base64_fields=("c_public", "s_public"),
              summary="Secure aggregation round 1: the device's two X25519 public keys (the body; "
                      "the other fields in the query string)",
              field_codes=dict.fromkeys(("public_keys", "c_public", "s_public"),
                                        "secagg_message_invalid"),
              errors=(400, 403, 404, 409)),
        Event(name="secagg-share-keys", method="POST", request=SecAggShareKeysRequest,
              answer=SecAggReceivedAnswer, binary_fields=("boxes",),
              summary="Secure aggregation round 2: one share box per neighbour (the body: entries; "
                      "the other fields in the query string)",
              field_codes={"boxes": "secagg_message_invalid"},
              errors=(400, 403, 404, 409)),
        Event(name="secagg-masked-input", method="POST", request=SecAggMaskedInputRequest,
              answer=SecAggReceivedAnswer, binary_fields=("masked_input",),
              summary="Secure aggregation round 3: the masked update (the body; the other fields "
                      "in the query string)",
              field_codes={"masked_input": "secagg_message_invalid"},
              errors=(400, 403, 404, 409, 413)),
        Event(name="secagg-unmask", method="POST", request=SecAggUnmaskRequest,
              answer=SecAggReceivedAnswer, binary_fields=("shares",),
              summary="Secure aggregation round 4: the shares that take the masks off the sum (the "
                      "body: entries; the other fields in the query string)",
              field_codes={"shares": "secagg_message_invalid"},
              errors=(400, 403, 404, 409)),
    )
}

# Pushed to a WebSocket, unasked, after a cycle-request with `notify` was turned away.
PLACE_AVAILABLE = "place-available"
