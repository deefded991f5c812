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

from fedgrid_protocol.errors import ApiError
from fedgrid_server.credentials import bearer_token, load_or_create_secret, tokens_equal

__all__ = ["bearer_token", "check_bearer", "load_or_create_secret", "new_node_token",
           "token_hash", "token_matches"]


def new_node_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    # Node tokens carry 256 random bits, so a plain hash is enough (no password stretching needed).
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_matches(token: str | None, stored_hash: str) -> bool:
    if not isinstance(token, str) or not token:
        return False
    # Both sides are hex digests, so comparing them as bytes never meets non-ASCII text.
    return hmac.compare_digest(token_hash(token).encode(), stored_hash.encode())


def check_bearer(expected: str, authorization: object, *, what: str, code_prefix: str) -> None:
    """Raise unless the header is ``Bearer <expected>`` (constant-time compare on bytes).

    No bearer token (absent, another scheme, not a string, absurdly long) gives the coded 401, a
    wrong one (non-ASCII included) the coded 403.
    """
    token = bearer_token(authorization)
    if token is None:
        raise ApiError(
            f"{code_prefix}_required",
            f"this route needs the {what}: send 'Authorization: Bearer <token>'",
            401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not tokens_equal(token, expected):
        raise ApiError(f"{code_prefix}_invalid", f"the {what} is not valid for this Network", 403)
