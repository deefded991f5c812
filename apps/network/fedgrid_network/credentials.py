"""Who may do what on the Network.

- Joining needs the registration secret shared with the operator's Nodes (NETWORK_SECRET).
- The first join of a Node id hands that Node a random *node token*; the Network keeps only its
  SHA-256. Heartbeats, leaving and re-joining under that id need the token, so a Node that knows
  the registration secret still cannot register, heartbeat or leave as another Node. A Node that
  lost its token is removed by an admin (DELETE /nodes/<id>) and then joins afresh.
- Removing a Node needs the Network's admin token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

from fedgrid_protocol.errors import ApiError


def load_or_create_secret(path: Path) -> tuple[str, bool]:
    """A secret kept in a file (mode 0600), created if absent. Returns (secret, created)."""
    if path.exists():
        return path.read_text().strip(), False
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    path.touch(mode=0o600)
    path.write_text(secret + "\n")
    return secret, True


def new_node_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    # Node tokens carry 256 random bits, so a plain hash is enough (no password stretching needed).
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str | None, stored_hash: str) -> bool:
    return bool(token) and hmac.compare_digest(token_hash(token), stored_hash)


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def check_bearer(expected: str, authorization: str | None, *, what: str, code_prefix: str) -> None:
    """Raise unless the header is ``Bearer <expected>`` (constant-time compare)."""
    token = bearer_token(authorization)
    if token is None:
        raise ApiError(
            f"{code_prefix}_required",
            f"this route needs the {what}: send 'Authorization: Bearer <token>'",
            401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(token, expected):
        raise ApiError(f"{code_prefix}_invalid", f"the {what} is not valid for this Network", 403)
