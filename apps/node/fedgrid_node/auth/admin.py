"""The admin bearer token guarding management routes (hosting, checkpoints, metrics)."""

from __future__ import annotations

import logging
from pathlib import Path

from fedgrid_protocol.errors import ApiError
from fedgrid_server.credentials import bearer_token, load_or_create_secret, tokens_equal

log = logging.getLogger("fedgrid.node")


def load_or_create_admin_token(data_dir: Path) -> tuple[str, bool]:
    """The token stored in the data directory, creating one if absent. Returns (token, created).

    Kept on disk (mode 0600, written atomically) so that a restart does not silently change it
    under the operator. A file that is empty or whitespace-only (never a valid token) is replaced
    by a new token, with a warning in the log; an unusable one stops the Node
    (`fedgrid_server.credentials.SecretFileError`).
    """
    return load_or_create_secret(data_dir / "admin-token", what="admin token", log=log)


def check_admin_token(expected: str, authorization: object) -> None:
    """Raise unless ``authorization`` is ``Bearer <expected>`` (compared in constant time).

    ``authorization`` may be anything a client sent (a header, a WebSocket envelope's field): no
    bearer token gives the coded 401, a wrong one the coded 403.
    """
    token = bearer_token(authorization)
    if token is None:
        raise ApiError(
            "admin_token_required",
            "this route needs the Node's admin token: send 'Authorization: Bearer <token>'",
            401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not tokens_equal(token, expected):
        raise ApiError("admin_token_invalid", "the admin token is not valid for this Node", 403)
