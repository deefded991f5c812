"""The admin bearer token guarding management routes (hosting, checkpoints, metrics)."""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path

from fedgrid_protocol.errors import ApiError


def load_or_create_admin_token(data_dir: Path) -> tuple[str, bool]:
    """The token stored in the data directory, creating one if absent. Returns (token, created).

    Kept on disk (mode 0600) so that a restart does not silently change it under the operator.
    """
    path = data_dir / "admin-token"
    if path.exists():
        return path.read_text().strip(), False
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    path.touch(mode=0o600)
    path.write_text(token + "\n")
    return token, True


def check_admin_token(expected: str, authorization: str | None) -> None:
    """Raise unless ``authorization`` is ``Bearer <expected>`` (compared in constant time)."""
    if not authorization:
        raise ApiError(
            "admin_token_required",
            "this route needs the Node's admin token: send 'Authorization: Bearer <token>'",
            401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip(), expected):
        raise ApiError("admin_token_invalid", "the admin token is not valid for this Node", 403)
