"""The Node's side of a process's `server_config` and `client_config`.

The keys, types, bounds and defaults are defined once, in `fedgrid_protocol.configs`. Here the
Node adds what only it can check (a strategy's options, the authentication settings), and reads
the configs stored with hosted processes.

- `check_server_config` / `check_client_config`: at hosting, strict (with the aggregation and
  privacy settings' cross-checks); a refusal is a
  `ServerConfigError` (`ConfigInvalid`) whose `api_error()` is the coded 400.
- `parse_server_config`: a stored process's config. Never raises: a config hosted before today's
  rules (a misspelt key was ignored then) is read leniently, with a warning in the log.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fedgrid_protocol.configs import (
    DEFAULT_OVER_SELECTION,
    POOL_SELECTIONS,
    QUORUM_POLICIES,
    ClientConfig,
    ConfigInvalid,
    ServerConfig,
    read_leniently,
    validate_client_config,
    validate_server_config,
)

from ..auth.device_tokens import AuthConfigError, check_auth_settings
from .aggregators import aggregation_problem
from .privacy.checks import privacy_problem

log = logging.getLogger(__name__)

# A refused config; kept under its old name for the Node's code and tests.
ServerConfigError = ConfigInvalid

__all__ = [
    "DEFAULT_OVER_SELECTION", "POOL_SELECTIONS", "QUORUM_POLICIES", "ClientConfig",
    "ServerConfig", "ServerConfigError", "check_client_config", "check_server_config",
    "parse_server_config",
]

_warned: set[str] = set()  # stored configs already warned about (once per config per run)


def check_server_config(raw: Any) -> ServerConfig:
    """A researcher's server_config, validated as hosting needs it, or `ServerConfigError`."""
    config = validate_server_config(raw)
    from .strategies import StrategyConfigError, build_strategy

    try:
        build_strategy(config.strategy)
    except StrategyConfigError as exc:
        raise ConfigInvalid("server_config", "server_config.strategy",
                            f"server_config.strategy: {exc}") from None
    problem = aggregation_problem(config) or privacy_problem(config)
    if problem is not None:
        field, message = problem
        raise ConfigInvalid("server_config", field, message)
    try:
        check_auth_settings(config.authentication)
    except AuthConfigError as exc:
        raise ConfigInvalid("server_config", "server_config.authentication",
                            f"server_config.authentication: {exc}") from None
    return config


def check_client_config(raw: Any) -> ClientConfig:
    """A researcher's client_config (the keys devices read), or `ConfigInvalid`."""
    return validate_client_config(raw)


def parse_server_config(stored: Any) -> ServerConfig:
    """A hosted process's stored server_config; what today's rules refuse is ignored, logged."""
    config, ignored = read_leniently(ServerConfig, stored)
    if ignored:
        key = json.dumps(stored, sort_keys=True, default=str)
        if key not in _warned:
            _warned.add(key)
            log.warning("a hosted process's server_config does not pass today's checks; it is "
                        "read without: %s", "; ".join(ignored))
    return config
