"""A process's `server_config`, parsed and checked once at hosting time.

Keys follow PyGrid's names where PyGrid had them. Speeds are in Mbit/s, ping in milliseconds,
durations in seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..auth.device_tokens import AuthConfigError, check_auth_settings

POOL_SELECTIONS = ("iterate", "random")
QUORUM_POLICIES = ("extend", "abandon")
# How much more than the goal to accept, because some devices drop out (Bonawitz et al. 2019).
DEFAULT_OVER_SELECTION = 1.3


class ServerConfigError(ValueError):
    """The server_config cannot be used; the message names the key."""


@dataclass(frozen=True)
class ServerConfig:
    max_diffs: int = 10  # the goal: this many reports close the cycle
    min_diffs: int = 1  # the quorum needed to aggregate at the deadline
    max_workers: int = 13  # devices accepted per cycle
    pool_selection: str = "iterate"
    do_not_reuse_workers_until_cycle: int = 0  # a worker may rejoin this many cycles later
    minimum_upload_speed: float | None = None  # Mbit/s
    minimum_download_speed: float | None = None  # Mbit/s
    maximum_ping: float | None = None  # ms
    num_cycles: int | None = None  # None: cycles go on until the process is stopped
    cycle_length: float = 3600.0  # seconds from a cycle's start to its deadline
    quorum_policy: str = "extend"  # what a deadline without quorum does
    extend_seconds: float | None = None  # by how much `extend` moves the deadline (cycle_length)
    # Seconds an accepted device has to report before its place goes to another (None: derived
    # from observed report times, see leases.py).
    assignment_lease: float | None = None
    strategy: dict[str, Any] = field(default_factory=lambda: {"name": "fedavg"})
    authentication: dict[str, Any] | None = None

    @property
    def requires_speed_test(self) -> bool:
        return any(
            v is not None
            for v in (self.minimum_upload_speed, self.minimum_download_speed, self.maximum_ping)
        )

    def public(self) -> dict[str, Any]:
        """The settings without secrets, for listings and dashboards."""
        settings = self.__dict__.copy()
        if self.authentication:
            settings["authentication"] = {"type": self.authentication.get("type", "jwt")}
        return settings


def _number(raw: dict[str, Any], key: str, *, integer: bool, minimum: float, default: Any) -> Any:
    value = raw.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ServerConfigError(f"server_config.{key} must be a number")
    if integer and int(value) != value:
        raise ServerConfigError(f"server_config.{key} must be an integer")
    if value < minimum:
        raise ServerConfigError(f"server_config.{key} must be at least {minimum}")
    return int(value) if integer else float(value)


def parse_server_config(raw: Any) -> ServerConfig:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ServerConfigError("server_config must be a JSON object")
    max_diffs = _number(raw, "max_diffs", integer=True, minimum=1, default=10)
    min_diffs = _number(raw, "min_diffs", integer=True, minimum=1, default=1)
    if min_diffs > max_diffs:
        raise ServerConfigError("server_config.min_diffs cannot exceed max_diffs")
    default_workers = math.ceil(DEFAULT_OVER_SELECTION * max_diffs)
    max_workers = _number(raw, "max_workers", integer=True, minimum=1, default=default_workers)
    if max_workers < max_diffs:
        raise ServerConfigError("server_config.max_workers cannot be below max_diffs")
    pool_selection = raw.get("pool_selection", "iterate")
    if pool_selection not in POOL_SELECTIONS:
        raise ServerConfigError(f"server_config.pool_selection must be one of {POOL_SELECTIONS}")
    quorum_policy = raw.get("quorum_policy", "extend")
    if quorum_policy not in QUORUM_POLICIES:
        raise ServerConfigError(f"server_config.quorum_policy must be one of {QUORUM_POLICIES}")
    strategy = raw.get("strategy", {"name": "fedavg"})
    if isinstance(strategy, str):
        strategy = {"name": strategy}
    if not isinstance(strategy, dict) or not isinstance(strategy.get("name"), str):
        raise ServerConfigError("server_config.strategy must be a name or {'name': ..., options}")
    from .strategies import StrategyConfigError, build_strategy

    try:
        build_strategy(strategy)
    except StrategyConfigError as exc:
        raise ServerConfigError(f"server_config.strategy: {exc}") from None
    authentication = raw.get("authentication")
    try:
        check_auth_settings(authentication)
    except AuthConfigError as exc:
        raise ServerConfigError(f"server_config.authentication: {exc}") from None
    return ServerConfig(
        max_diffs=max_diffs,
        min_diffs=min_diffs,
        max_workers=max_workers,
        pool_selection=pool_selection,
        do_not_reuse_workers_until_cycle=_number(
            raw, "do_not_reuse_workers_until_cycle", integer=True, minimum=0, default=0
        ),
        minimum_upload_speed=_number(raw, "minimum_upload_speed", integer=False, minimum=0, default=None),
        minimum_download_speed=_number(
            raw, "minimum_download_speed", integer=False, minimum=0, default=None
        ),
        maximum_ping=_number(raw, "maximum_ping", integer=False, minimum=0, default=None),
        num_cycles=_number(raw, "num_cycles", integer=True, minimum=1, default=None),
        cycle_length=_number(raw, "cycle_length", integer=False, minimum=0.05, default=3600.0),
        quorum_policy=quorum_policy,
        extend_seconds=_number(raw, "extend_seconds", integer=False, minimum=0.05, default=None),
        assignment_lease=_number(raw, "assignment_lease", integer=False, minimum=0.05, default=None),
        strategy=strategy,
        authentication=authentication,
    )
