"""The Network's payloads: what a Node sends to join, heartbeat and leave, and a model query.

Defined once, like the Node's events (`events.py`): the Network validates every body and query
string with these models (`validation.validate`, so a refused field answers 400
`invalid_request` with `details.field`) and its OpenAPI document takes their JSON Schema. The
Node's membership code (apps/node/fedgrid_node/network_membership.py) is the reference client:
everything it sends is accepted.

PyGrid's spellings are aliases (`node-id`, `node-address`; `model_name`, `model_version`): the
first one present counts, the others are dropped, as the routes did before these models.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from .events import NO_CONTROL_CHARACTERS, Name, Token, Version, _finite, _not_bool
from .validation import present_fields

MAX_PROCESSES = 1000
MAX_COUNT = 2**31 - 1  # the Network stores counters in 32-bit columns
MAX_LOAD = 1e12
MAX_ADDRESS = 512
MAX_SOFTWARE_VERSION = 64
DEADLINE_YEARS = (2000, 9999)
NODE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
# A replica id: a Node process's name within its deployment (default <hostname>-<pid>).
REPLICA_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
# An address is one token: no whitespace (Unicode's too) and no control characters.
NO_SPACE_OR_CONTROL = r"^[^\s\x00-\x1f\x7f-\x9f]*$"


def _http_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        port = parts.port  # raises on a port that is not a number in 0-65535
    except ValueError as exc:  # e.g. "http://[::1" (an unclosed IPv6 bracket)
        raise ValueError(f"must be the Node's http(s) URL, e.g. http://alice:5000 ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL with a host, e.g. http://alice:5000")
    if port == 0:
        raise ValueError("must have a port from 1 to 65535 (or none)")
    return value.rstrip("/")


def _deadline(value: Any) -> Any:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and len(value) <= 64:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("must be an ISO 8601 time, e.g. 2030-01-01T00:00:00Z") from None
    else:
        raise ValueError("must be an ISO 8601 time (text), e.g. 2030-01-01T00:00:00Z")
    low, high = DEADLINE_YEARS
    if not low <= parsed.year <= high:
        raise ValueError(f"must be in the years {low}-{high}")
    if parsed.tzinfo is not None:
        # Years 2000-9999 stay in range after the shift, except 9999-12-31 with a negative offset.
        try:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:
            raise ValueError(f"must be in the years {low}-{high}") from None
    return parsed  # naive UTC, as the Network stores times


NodeId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=NODE_ID_PATTERN),
    Field(description="1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"),
]
ReplicaId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=REPLICA_ID_PATTERN),
    Field(description="one process of a replicated Node (`--cluster`): 1-128 letters, digits, "
                      "'.', '_' or '-', starting with a letter or digit; absent for a Node that "
                      "runs as one process"),
]
Address = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ADDRESS, pattern=NO_SPACE_OR_CONTROL),
    AfterValidator(_http_url),
    Field(description="the Node's URL as devices reach it, e.g. http://alice:5000",
          json_schema_extra={"format": "uri"}),
]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT), BeforeValidator(_not_bool)]
Load = Annotated[float, Field(ge=0, le=MAX_LOAD), BeforeValidator(_not_bool), AfterValidator(_finite)]
Deadline = Annotated[
    datetime,
    BeforeValidator(_deadline),
    WithJsonSchema({"type": "string", "maxLength": 64,
                    "description": f"ISO 8601 (UTC when it has no offset), years "
                                   f"{DEADLINE_YEARS[0]}-{DEADLINE_YEARS[1]}, "
                                   "e.g. 2030-01-01T00:00:00Z"}),
]
SoftwareVersion = Annotated[
    str, StringConstraints(max_length=MAX_SOFTWARE_VERSION, pattern=NO_CONTROL_CHARACTERS)
]


class NetworkPayload(BaseModel):
    """Unknown fields are refused; of a field's spellings (aliases) the first one present counts."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _first_spelling(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for field in cls.model_fields.values():
            if isinstance(field.validation_alias, AliasChoices):
                spellings = [s for s in field.validation_alias.choices if isinstance(s, str)]
                given = [s for s in spellings if s in data]
                for extra in given[1:]:
                    del data[extra]
        return data


class JoinRequest(NetworkPayload):
    """`POST /join` (bearer: the registration secret)."""

    node_id: NodeId = Field(validation_alias=AliasChoices("node_id", "node-id"))
    address: Address = Field(validation_alias=AliasChoices("address", "node-address"))
    node_token: Token | None = Field(None, description="the token the first join answered; "
                                                       "required to join again under this id")
    version: SoftwareVersion | None = Field(None, description="the Node's software version")
    replica: ReplicaId | None = None


class HostedProcessReport(NetworkPayload):
    """One model a Node hosts, with its cycle status; null or "" counts as absent."""

    name: Name
    version: Version
    status: Literal["open", "waiting", "finished"] = "open"
    cycle: Count | None = Field(None, description="the open cycle, else the last one")
    checkpoint: Count | None = Field(None, description="the latest checkpoint's number")
    accepted: Count = Field(0, description="devices accepted in the open cycle")
    reported: Count = Field(0, description="of them, those that reported")
    deadline: Deadline | None = Field(None, description="the open cycle's deadline")

    @model_validator(mode="before")
    @classmethod
    def _absent(cls, data: Any) -> Any:
        return present_fields(data) if isinstance(data, dict) else data


class HeartbeatRequest(NetworkPayload):
    """`POST /heartbeat` (bearer: the node token)."""

    node_id: NodeId
    processes: list[HostedProcessReport] = Field(default_factory=list, max_length=MAX_PROCESSES)
    devices: Count = Field(0, description="devices training now (placed, not yet reported)")
    load: Load = Field(0.0, description="the Node's load figure; routing prefers the least")
    health: Literal["ok", "degraded"] = Field(
        "ok", description="degraded: the Node's own database does not answer"
    )
    replica: ReplicaId | None = None


class NodeRef(NetworkPayload):
    """A Node by id: the path parameter of `/nodes/{node_id}`."""

    node_id: NodeId


class LeaveRequest(NodeRef):
    """`POST /leave` (bearer: the node token): the replica named leaves; without one, the whole
    Node."""

    replica: ReplicaId | None = None


class ModelQuery(NetworkPayload):
    """`/route` and `/search-model`: a model by name, optionally one version and one Node.

    A model is one (Node, name, version): the same name hosted on two Nodes is two independent
    models, so `node` picks which one when the name alone is ambiguous.
    """

    name: Name = Field(validation_alias=AliasChoices("model", "name", "model_name"),
                       description="the model's name (also `name`, PyGrid's `model_name`)")
    version: Version | None = Field(None, validation_alias=AliasChoices("version", "model_version"),
                                    description="one version (also PyGrid's `model_version`)")
    node: NodeId | None = Field(None, description="only the model hosted on this Node (its id)")


REQUESTS: tuple[type[BaseModel], ...] = (JoinRequest, HeartbeatRequest, LeaveRequest, NodeRef,
                                         ModelQuery)
