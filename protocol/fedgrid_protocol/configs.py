"""A hosted model's settings, defined once: ``server_config`` (how the Node runs its cycles) and
``client_config`` (how devices train), each key with its type, bounds, default and meaning.

The Node validates both at ``host-training`` and refuses a bad one with ``server_config_invalid`` /
``client_config_invalid`` (``details.field`` is the dotted path, e.g. ``server_config.max_diffs``);
an unknown key is refused by name, with the closest valid key suggested. docs/node.md's tables are
generated from these models (``python -m fedgrid_protocol.configs``).

What the protocol cannot know stays with the Node: a strategy's options (``build_strategy``) and
the authentication settings (``check_auth_settings``) are checked there after these models.

Numbers are strict: ``"5"`` or ``true`` is not a number; an integer may be written ``5.0``.
Speeds are in Mbit/s, ping in milliseconds, durations in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Annotated, Any, ClassVar, Literal, get_args, get_origin

import annotated_types
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .errors import ApiError
from .validation import closest, reason
from .validation import number_text as _number

# How much more than the goal to accept, because some devices drop out (Bonawitz et al. 2019).
DEFAULT_OVER_SELECTION = 1.3
POOL_SELECTIONS = ("iterate", "random")
# How devices encode the diff they report (docs/protocol.md, "Compressed updates").
DIFF_ENCODINGS = ("float32", "float16", "int8")
QUORUM_POLICIES = ("extend", "abandon")
DEFAULT_STRATEGY = "fedavg"
AGGREGATORS = ("mean", "median", "trimmed_mean")
# Durations beyond this would overflow the Node's clock arithmetic (datetime ends at year 9999).
MAX_SECONDS = 10 * 365 * 24 * 3600.0  # ten years


def _integral(value: Any) -> Any:
    """JSON has one number type: take 5.0 as the integer 5 (2.5 stays, and is refused)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _strategy(value: Any) -> Any:
    """``"fedadam"`` means ``{"name": "fedadam"}``; names are case-insensitive."""
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        raise ValueError("must be a strategy name or an object {\"name\": ..., options}")
    name = value.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("needs a \"name\" (a string, e.g. \"fedavg\")")
    return {**value, "name": name.strip().lower()}


Integer = Annotated[int, BeforeValidator(_integral), Field(strict=True)]
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Seconds = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.05, le=MAX_SECONDS)]
Strategy = Annotated[dict[str, Any], BeforeValidator(_strategy)]
Fraction = Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0, lt=1)]


def _doc(default: str, meaning: str, type_: str | None = None) -> dict[str, Any]:
    """Field metadata for the docs table: the default as people read it, and the meaning."""
    extra: dict[str, Any] = {"doc_default": default}
    if type_ is not None:
        extra["doc_type"] = type_
    return {"description": meaning, "json_schema_extra": extra}


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    CONFIG_NAME: ClassVar[str] = ""  # "server_config" / "client_config": the prefix of every field path


class DifferentialPrivacyConfig(_Config):
    """``server_config.differential_privacy``: DP-FedAvg (McMahan et al. 2018) with optional
    adaptive clipping (Andrew et al. 2021). The Node's checks (``population`` ≥ ``max_diffs``, a
    first cycle within ``target_epsilon``, no robust aggregator beside it, ``clip_at: device``
    exactly with secure aggregation and a fixed clip) live with the Node."""

    CONFIG_NAME: ClassVar[str] = "server_config.differential_privacy"

    noise_multiplier: Number = Field(..., gt=0, **_doc(
        "required",
        "z: the Gaussian noise's standard deviation as a multiple of the clip, on the sum of the "
        "cycle's clipped updates (with adaptive clipping, the total of the update's and the "
        "clipped count's noise, Andrew et al. 2021 Theorem 1)"))
    population: Integer = Field(..., ge=1, **_doc(
        "required",
        "devices that may take part; the accountant's sampling rate is `max_diffs` ÷ "
        "`population` (with secure aggregation `max_workers` ÷ `population`: the whole cohort "
        "may be in the sum)"))
    clip: Number = Field(1.0, gt=0, **_doc(
        "1", "the L2 bound of each update (with adaptive clipping: its starting value)"))
    clip_at: Literal["node", "device"] = Field("node", **_doc(
        "`node`",
        "where updates are clipped: `node` clips each update it receives, so it sees every "
        "update unclipped (no secure aggregation); `device`: each device clips its own update "
        "before masking it, the Node only noises the sum; required with, and only allowed "
        "with, `secure_aggregation`, and with a fixed clip (see "
        "[Differential privacy with secure aggregation]"
        "(#differential-privacy-with-secure-aggregation))"))
    target_unclipped_quantile: Fraction | None = Field(None, **_doc(
        "none (fixed clip)",
        "adaptive clipping: the fraction of updates the clip should leave unclipped "
        "(Andrew et al. 2021 use 0.5)"))
    clip_learning_rate: Number = Field(0.2, gt=0, **_doc(
        "0.2", "adaptive clipping: η_C in `clip ← clip × exp(−η_C × (unclipped fraction − target))`"))
    clipped_count_stddev: Number | None = Field(None, gt=0, **_doc(
        "`max_diffs` ÷ 20",
        "adaptive clipping: σ_b, the noise on the count of unclipped updates"))
    delta: Fraction | None = Field(None, **_doc(
        "population^−1.1", "the δ that ε is reported for (McMahan et al. 2018's choice)"))
    target_epsilon: Number | None = Field(None, gt=0, **_doc(
        "none (no budget)",
        "the budget: the process finishes (`finished_because`: `privacy_budget`) instead of "
        "opening a cycle that would take ε above it"))


def _secure_aggregation(value: Any) -> Any:
    """``true`` means every default; ``false`` means off."""
    if value is True:
        return {}
    if value is False:
        return None
    return value


class SecureAggregation(_Config):
    """``server_config.secure_aggregation``: the SecAgg+ parameters (docs/secure-aggregation.md).
    Defaults follow Flower's SecAgg+."""

    CONFIG_NAME: ClassVar[str] = "server_config.secure_aggregation"

    clipping_range: Number = Field(8.0, gt=0, **_doc(
        "8 (with `differential_privacy` at `clip_at: device`: its `clip`)",
        "each coordinate of an update is clipped to [-c, c] before quantisation; one "
        "quantisation step is 2c / (`quantization_range` − 1)"))
    quantization_range: Integer = Field(2**22, ge=2, **_doc(
        "2^22", "integer levels per coordinate; a cohort holds at most "
                "(modulus - 1) / (quantization_range - 1) devices"))
    modulus: Integer = Field(2**32, **_doc(
        "2^32", "masked sums live mod this power of two (2^8 to 2^32)"))
    num_shares: Number | None = Field(None, gt=0, **_doc(
        "2 ⌈log2 n⌉", "neighbours (and shareholders) per device: a fraction (0, 1] of the "
                      "cohort or a count ≥ 2"))
    reconstruction_threshold: Number = Field(0.5, gt=0, **_doc(
        "0.5", "shares that rebuild a secret: a fraction (0, 1] of `num_shares` or a count; "
               "never below a strict majority"))
    round_timeout: Seconds = Field(30.0, **_doc(
        "30", "seconds a round waits for devices that have not answered; the first round "
              "(advertise-keys) waits for training, until the cycle's deadline less three of these"))

    @model_validator(mode="after")
    def _coherent(self) -> SecureAggregation:
        self.params()  # raises ValueError naming the problem
        return self

    def params(self):
        """The protocol core's parameters (needs the `secagg` extra: cryptography)."""
        from .secagg.params import SecAggParams

        num_shares = self.num_shares
        if num_shares is not None and num_shares > 1 and float(num_shares).is_integer():
            num_shares = int(num_shares)
        threshold = self.reconstruction_threshold
        if threshold > 1 and float(threshold).is_integer():
            threshold = int(threshold)
        return SecAggParams(clipping_range=self.clipping_range,
                            quantization_range=self.quantization_range, modulus=self.modulus,
                            num_shares=num_shares, reconstruction_threshold=threshold)


class SecureCycleSettings(SecureAggregation):
    """The accepted answer's ``secure_aggregation``: what a device of a secure cycle needs, the
    process's SecAgg+ parameters and, with differential privacy, the clip it applies itself."""

    CONFIG_NAME: ClassVar[str] = "secure_aggregation"

    clip_norm: Number | None = Field(None, gt=0, **_doc(
        "absent (no clipping)",
        "set by the Node from `differential_privacy.clip` (`clip_at: device`): the device scales "
        "its whole update by min(1, clip_norm ÷ its L2 norm) before quantising and masking it"))


class ServerConfig(_Config):
    """``server_config``: how the Node runs the model's cycles. Every key is optional."""

    CONFIG_NAME: ClassVar[str] = "server_config"

    max_diffs: Integer = Field(10, ge=1, **_doc(
        "10", "the goal: reports that close the cycle at once"))
    min_diffs: Integer = Field(1, ge=1, **_doc(
        "1", "the quorum needed to aggregate at the deadline; at most `max_diffs`"))
    max_workers: Integer | None = Field(None, ge=1, **_doc(
        "ceil(1.3 × max_diffs)",
        "devices accepted per cycle, at least `max_diffs` (over-selection: 6–10 % of devices "
        "drop out, Bonawitz et al. 2019)"))
    cycle_length: Seconds = Field(3600.0, **_doc(
        "3600", "seconds from a cycle's start to its deadline"))
    num_cycles: Integer | None = Field(None, ge=1, **_doc(
        "unlimited", "completed cycles after which the process is finished"))
    quorum_policy: Literal["extend", "abandon"] = Field("extend", **_doc(
        "`extend`",
        "at a deadline without quorum: `extend` it by `extend_seconds`, or `abandon` the cycle "
        "and start a fresh one on the same checkpoint; both are logged"))
    extend_seconds: Seconds | None = Field(None, **_doc(
        "`cycle_length`", "by how much `extend` moves a deadline without quorum"))
    pool_selection: Literal["iterate", "random"] = Field("iterate", **_doc(
        "`iterate`",
        "`iterate`: first come, first served; `random`: accept with probability free places ÷ "
        "requests expected in the rest of the cycle (from the arrival rate so far), so late "
        "devices get places too"))
    do_not_reuse_workers_until_cycle: Integer = Field(0, ge=0, **_doc(
        "0", "a worker assigned in cycle *s* is not accepted again before cycle *s + k*"))
    assignment_lease: Seconds | None = Field(None, **_doc(
        "derived",
        "seconds an accepted device has to report before its place goes to another device "
        "(see below)"))
    minimum_download_speed: Number | None = Field(None, ge=0, **_doc(
        "none", "Mbit/s, measured by the device with `speed-test`"))
    minimum_upload_speed: Number | None = Field(None, ge=0, **_doc(
        "none", "Mbit/s, measured by the device with `speed-test`"))
    maximum_ping: Number | None = Field(None, ge=0, **_doc(
        "none", "milliseconds, measured by the device with `speed-test`"))
    strategy: Strategy = Field(default_factory=lambda: {"name": DEFAULT_STRATEGY}, **_doc(
        "`fedavg`",
        "the server strategy: a name (`\"fedadam\"`) or `{\"name\": ..., options}`, see below; "
        "a name is stored as `{\"name\": ...}`",
        "name or object"))
    evaluation_every: Integer | None = Field(None, ge=1, **_doc(
        "off",
        "federated evaluation: cycles 1, 1 + N, 1 + 2N... also hand out evaluation assignments "
        "(devices run the cycle's checkpoint on their data without training and report metrics "
        "only), to devices turned away because every training place is taken"))
    evaluation_devices: Integer = Field(1, ge=1, **_doc(
        "1", "evaluation assignments handed out per evaluating cycle"))
    aggregator: Literal["mean", "median", "trimmed_mean"] = Field("mean", **_doc(
        "`mean`",
        "how the cycle's diffs are combined before the strategy's step: `mean` (streams; "
        "`num_samples`-weighted unless `norm_bound` or `differential_privacy` is set), or the "
        "unweighted coordinate-wise `median` / `trimmed_mean` (Yin et al. 2018; they keep the "
        "cycle's reports until the close), see [Robust aggregation](#robust-aggregation)"))
    trim_fraction: Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0, lt=0.5)] = Field(
        0.1, **_doc("0.1", "`trimmed_mean`: the fraction of values cut at each end, per coordinate"))
    norm_bound: Number | None = Field(None, gt=0, **_doc(
        "none",
        "clip each update's L2 norm to this bound before aggregating (Sun et al. 2019); the "
        "mean becomes unweighted"))
    differential_privacy: DifferentialPrivacyConfig | None = Field(None, **_doc(
        "off", "DP-FedAvg: see [Differential privacy](#differential-privacy)", "object"))
    authentication: dict[str, Any] | None = Field(None, **_doc(
        "open", "device tokens: see [api.md](api.md#device-authentication-server_configauthentication)",
        "object"))
    secure_aggregation: Annotated[SecureAggregation | None, BeforeValidator(_secure_aggregation)] = Field(
        None, **_doc(
            "off", "`true` or an object of SecAgg+ parameters: the Node learns only the sum of "
                   "each cycle's updates; see [secure-aggregation.md](secure-aggregation.md)",
            "boolean or object"))

    @field_validator("min_diffs")
    @classmethod
    def _quorum_within_goal(cls, value: int, info: ValidationInfo) -> int:
        goal = info.data.get("max_diffs")
        if goal is not None and value > goal:
            raise ValueError(f"cannot exceed max_diffs ({goal})")
        return value

    @field_validator("max_workers")
    @classmethod
    def _workers_cover_goal(cls, value: int | None, info: ValidationInfo) -> int | None:
        goal = info.data.get("max_diffs")
        if value is not None and goal is not None and value < goal:
            raise ValueError(f"cannot be below max_diffs ({goal})")
        return value

    @model_validator(mode="after")
    def _derive_max_workers(self) -> ServerConfig:
        if self.max_workers is None:
            # Derived, not given: set without marking it as set (model_dump(exclude_unset=True)
            # keeps only what the researcher wrote).
            object.__setattr__(self, "max_workers",
                               math.ceil(DEFAULT_OVER_SELECTION * self.max_diffs))
        dp = self.differential_privacy
        if (self.secure_aggregation is not None and dp is not None and dp.clip_at == "device"
                and "clipping_range" not in self.secure_aggregation.model_fields_set):
            # A device-clipped update has every coordinate within [-clip, clip]: a wider range
            # would only coarsen the quantisation step. Derived, so not marked as set.
            derived = self.secure_aggregation.model_copy(update={"clipping_range": dp.clip})
            object.__setattr__(derived, "__pydantic_fields_set__",
                               set(self.secure_aggregation.model_fields_set))
            object.__setattr__(self, "secure_aggregation", derived)
        if self.secure_aggregation is not None:
            # A secure cycle's cohort is its max_workers places.
            limit = self.secure_aggregation.params().max_cohort()
            if not 2 <= self.max_workers <= limit:
                raise ValueError(f"secure_aggregation needs max_workers between 2 and {limit} "
                                 f"(the cohort), not {self.max_workers}")
        return self

    @property
    def requires_speed_test(self) -> bool:
        return any(v is not None for v in (self.minimum_upload_speed,
                                           self.minimum_download_speed, self.maximum_ping))

    def public(self) -> dict[str, Any]:
        """Every setting with its effective value (defaults included), without secrets."""
        settings = self.model_dump()
        if self.authentication:
            settings["authentication"] = {"type": self.authentication.get("type", "jwt")}
        return settings

    def stored(self) -> dict[str, Any]:
        """What the researcher set, normalised (a strategy name becomes ``{"name": ...}``)."""
        return self.model_dump(exclude_unset=True)


class ClientConfig(_Config):
    """``client_config``: what every device's training reads (both SDKs). Every key is optional;
    an unset one falls back to the device's own argument, then to the plan's default."""

    CONFIG_NAME: ClassVar[str] = "client_config"

    name: Annotated[str, Field(strict=True, min_length=1)] | None = Field(None, **_doc(
        "the `name` field", "the model's name (PyGrid put it here; the `name` field wins)"))
    version: Annotated[str, Field(strict=True, min_length=1)] | None = Field(None, **_doc(
        "the `version` field",
        "the model's version (PyGrid put it here; the `version` field wins)"))
    batch_size: Integer | None = Field(None, ge=1, **_doc(
        "the plan's (32)", "examples per training step"))
    epochs: Integer | None = Field(None, ge=1, **_doc(
        "the plan's (1)", "passes over the device's data per cycle"))
    max_updates: Integer | None = Field(None, ge=1, **_doc(
        "the plan's (none)", "training steps per cycle at most"))
    lr: Number | None = Field(None, gt=0, **_doc(
        "the plan's", "the device's learning rate (PyGrid's name); give this or `learning_rate`"))
    learning_rate: Number | None = Field(None, gt=0, **_doc(
        "the plan's", "the device's learning rate; give this or `lr`"))
    shuffle: Annotated[bool, Field(strict=True)] | None = Field(None, **_doc(
        "the plan's (true)", "shuffle the examples before each epoch"))
    # Here, not in server_config: devices learn it from the cycle-request answer's client_config,
    # and the Node reads the same key to refuse a report in any other encoding.
    diff_encoding: Literal["float32", "float16", "int8"] = Field("float32", **_doc(
        "`float32`",
        "how devices encode the diff they report: `float16` halves and `int8` quarters the "
        "upload; the Node refuses any other encoding with `diff_encoding_mismatch` (see "
        "[protocol.md](protocol.md#compressed-updates))"))

    @field_validator("learning_rate")
    @classmethod
    def _one_learning_rate(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and info.data.get("lr") is not None:
            raise ValueError("cannot be given with lr: they are the same setting, give one")
        return value

    def stored(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


CONFIG_MODELS: dict[str, type[_Config]] = {"server_config": ServerConfig,
                                           "client_config": ClientConfig}


# ------------------------------------------------------------------------------- refusals


class ConfigInvalid(ValueError):
    """A refused ``server_config`` / ``client_config``: ``field`` is the dotted path of the first
    problem, ``message`` names it and says why; ``errors`` lists every problem."""

    def __init__(self, config: str, field: str, message: str, *,
                 suggestion: str | None = None, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.config = config
        self.code = f"{config}_invalid"
        self.field = field
        self.message = message
        self.suggestion = suggestion
        self.errors = errors or [{"field": field, "message": message}]

    def api_error(self) -> ApiError:
        details: dict[str, Any] = {"field": self.field}
        if self.suggestion:
            details["suggestion"] = self.suggestion
        if len(self.errors) > 1:
            details["errors"] = self.errors
        return ApiError(self.code, self.message, details=details)


def _bounds(metadata: list[Any]) -> str:
    words = []
    for item in metadata:
        if isinstance(item, annotated_types.Ge):
            words.append(f"≥ {_number(item.ge)}")
        elif isinstance(item, annotated_types.Gt):
            words.append(f"> {_number(item.gt)}")
        elif isinstance(item, annotated_types.Le):
            words.append(f"≤ {_number(item.le)}")
        elif isinstance(item, annotated_types.Lt):
            words.append(f"< {_number(item.lt)}")
        elif isinstance(item, annotated_types.MinLen) and item.min_length == 1:
            words.append("(not empty)")
    return ", ".join(words)


def _unknown_key(config: str, key: str) -> tuple[str, str | None]:
    model = CONFIG_MODELS[config]
    known = list(model.model_fields)
    close = closest(key, known)
    for other, other_model in CONFIG_MODELS.items():
        if other != config and key in other_model.model_fields:
            return f"{config}.{key} is not a {config} setting: it belongs in {other}", None
    if close:
        return f"{config}.{key} is not a setting; did you mean {close}?", close
    return (f"{config}.{key} is not a setting; the settings are: {', '.join(known)}", None)


def _unknown_nested_key(config: str, loc: tuple) -> str:
    """An unknown key inside an object setting (``differential_privacy``): name its settings."""
    path = ".".join([config, *(str(part) for part in loc)])
    field = CONFIG_MODELS[config].model_fields.get(str(loc[0]))
    nested, _ = _base(field.annotation) if field is not None else (None, [])
    if isinstance(nested, type) and issubclass(nested, BaseModel) and len(loc) == 2:
        known = list(nested.model_fields)
        close = closest(str(loc[-1]), known)
        if close:
            return f"{path} is not a setting; did you mean {close}?"
        return f"{path} is not a setting; the settings are: {', '.join(known)}"
    return f"{path} is not a setting"


def _problems(config: str, exc: ValidationError) -> Iterator[tuple[str, str, str | None]]:
    for error in exc.errors(include_url=False):
        path = ".".join([config, *(str(part) for part in error["loc"])])
        if error["type"] == "extra_forbidden" and len(error["loc"]) > 1:
            yield path, _unknown_nested_key(config, error["loc"]), None


            yield path, f"{path} is not a setting", None
        elif error["type"] == "extra_forbidden":
            message, suggestion = _unknown_key(config, str(error["loc"][-1]))
            yield path, message, suggestion
        else:
            yield path, f"{path} {reason(error)}", None


def _validate(model: type[_Config], raw: Any) -> Any:
    config = model.CONFIG_NAME
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigInvalid(config, config, f"{config} must be a JSON object (got {raw!r})")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = list(_problems(config, exc))
        field, message, suggestion = problems[0]
        raise ConfigInvalid(config, field, message, suggestion=suggestion,
                            errors=[{"field": f, "message": m} for f, m, _ in problems]) from None


def validate_server_config(raw: Any) -> ServerConfig:
    """``raw`` (None: every default) as a ServerConfig, or `ConfigInvalid`."""
    return _validate(ServerConfig, raw)


def validate_client_config(raw: Any) -> ClientConfig:
    """``raw`` (None: every default) as a ClientConfig, or `ConfigInvalid`."""
    return _validate(ClientConfig, raw)


def read_leniently(model: type[_Config], raw: Any) -> tuple[Any, list[str]]:
    """A stored config that may predate today's rules: the model without what it refuses.

    Unknown keys are ignored and each invalid key falls back to its default; returns the config
    and one line per dropped key (empty when ``raw`` is valid). Never raises.
    """
    config = model.CONFIG_NAME
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return model(), [f"{config} is not a JSON object ({raw!r}); every default is used"]
    settings, dropped = dict(raw), []
    while True:
        try:
            return model.model_validate(settings), dropped
        except ValidationError as exc:
            problems = list(_problems(config, exc))
            keys = {f.split(".")[1] for f, _, _ in problems if f.count(".") >= 1}
            keys &= set(settings)
            if not keys:  # cannot happen (every rule names a key); stay safe
                return model(), dropped + [f"{m}; every default is used" for _, m, _ in problems]
            for field, message, _ in problems:
                if field.split(".")[1] in keys:
                    dropped.append(f"{message} (ignored)")
            settings = {k: v for k, v in settings.items() if k not in keys}


# ------------------------------------------------------------------------------- docs


def _base(annotation: Any) -> tuple[Any, list[Any]]:
    """The type under Optional/Annotated, and the constraints met on the way."""
    metadata: list[Any] = []
    while True:
        if hasattr(annotation, "__metadata__"):  # Annotated[...]
            for meta in annotation.__metadata__:
                metadata.extend(getattr(meta, "metadata", [meta]))
            annotation = annotation.__origin__
        elif get_origin(annotation) is not None and type(None) in get_args(annotation):
            annotation = next(a for a in get_args(annotation) if a is not type(None))
        else:
            return annotation, metadata


def _type_of(info: Any) -> str:
    extra = info.json_schema_extra or {}
    if "doc_type" in extra:
        return extra["doc_type"]
    base, metadata = _base(info.annotation)
    if get_origin(base) is Literal:
        return " or ".join(f"`{v}`" for v in get_args(base))
    kind = {int: "integer", float: "number", bool: "boolean", str: "string"}.get(base, "object")
    return f"{kind} {_bounds(list(info.metadata) + metadata)}".strip()


def markdown_table(model: type[_Config]) -> str:
    """docs/node.md's table for ``model``: key, type and bounds, default, meaning."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for name, info in model.model_fields.items():
        default = (info.json_schema_extra or {}).get("doc_default", "")
        lines.append(f"| `{name}` | {_type_of(info)} | {default} | {info.description} |")
    return "\n".join(lines)


if __name__ == "__main__":
    for config_name, config_model in CONFIG_MODELS.items():
        print(f"{config_name}:\n\n{markdown_table(config_model)}\n")
    print(f"server_config.differential_privacy:\n\n{markdown_table(DifferentialPrivacyConfig)}\n")
