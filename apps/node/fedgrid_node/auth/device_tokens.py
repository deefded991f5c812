"""Verify the token a device presents to `authenticate`, as the process's server_config says.

``server_config["authentication"]`` may be absent (the process is open to any device), or:

- ``{"type": "jwt", "secret": "...", "algorithms": ["HS256"]}`` — HMAC-signed JWT;
- ``{"type": "jwt", "public_key": "-----BEGIN PUBLIC KEY-----...", "algorithms": ["RS256"]}``;
- ``{"type": "endpoint", "url": "https://...", "timeout": 5}`` — the token is POSTed as
  ``{"auth_token": ...}`` and any 2xx answer accepts it.

Optional JWT keys: ``audience``, ``issuer``, ``leeway`` (seconds), ``require_expiry`` (default true).
PyGrid accepted any algorithm the token named and never checked expiry; here the algorithm must be
in the allow-list and ``exp`` is required and honoured.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from fedgrid_protocol.errors import ApiError

HMAC_ALGORITHMS = {"HS256", "HS384", "HS512"}
RSA_ALGORITHMS = {"RS256", "RS384", "RS512"}
DEFAULT_ENDPOINT_TIMEOUT = 5.0


class AuthConfigError(ValueError):
    """The process's authentication settings are unusable (caught when hosting)."""


def check_auth_settings(settings: dict[str, Any] | None) -> None:
    """Validate ``server_config["authentication"]`` at hosting time, so devices never hit a bad one."""
    if not settings:
        return
    if not isinstance(settings, dict):
        raise AuthConfigError("authentication must be an object")
    kind = settings.get("type", "jwt")
    if kind == "endpoint":
        url = settings.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise AuthConfigError("authentication.url must be an http(s) URL")
        return
    if kind != "jwt":
        raise AuthConfigError("authentication.type must be 'jwt' or 'endpoint'")
    algorithms = _algorithms(settings)
    if algorithms & HMAC_ALGORITHMS and not isinstance(settings.get("secret"), str):
        raise AuthConfigError("HMAC algorithms need authentication.secret")
    if algorithms & RSA_ALGORITHMS:
        try:
            _public_key(settings.get("public_key") or settings.get("pub_key") or "")
        except ValueError as exc:
            raise AuthConfigError(f"authentication.public_key is not a PEM public key: {exc}") from None


def _algorithms(settings: dict[str, Any]) -> set[str]:
    default = ["RS256"] if (settings.get("public_key") or settings.get("pub_key")) else ["HS256"]
    algorithms = settings.get("algorithms", default)
    if not isinstance(algorithms, list) or not algorithms:
        raise AuthConfigError("authentication.algorithms must be a non-empty list")
    unknown = set(algorithms) - HMAC_ALGORITHMS - RSA_ALGORITHMS
    if unknown:
        raise AuthConfigError(f"algorithms not allowed: {sorted(unknown)} (use HS* or RS*)")
    return set(algorithms)


@lru_cache(maxsize=64)
def _public_key(pem: str):
    # Parsing a PEM key costs ~40 ms; cache it so each token check does not pay it again.
    return load_pem_public_key(pem.encode("utf-8"))


def verify_device_token(settings: dict[str, Any] | None, token: Any) -> dict[str, Any]:
    """Return the token's claims (empty for open processes/endpoints) or raise an `ApiError`."""
    if not settings:
        return {}
    if not isinstance(token, str) or not token:
        raise ApiError("auth_token_required", "this model needs an auth_token to authenticate", 401)
    if settings.get("type", "jwt") == "endpoint":
        return _verify_with_endpoint(settings, token)
    return _verify_jwt(settings, token)


def _verify_jwt(settings: dict[str, Any], token: str) -> dict[str, Any]:
    algorithms = _algorithms(settings)
    # A JWT is base64url text: anything else (non-ASCII, lone surrogates from JSON's "\ud800")
    # is refused here rather than left to fail inside the library.
    if not token.isascii():
        raise ApiError("auth_token_invalid", "auth_token is not a well-formed JWT", 401)
    try:
        header = jwt.get_unverified_header(token)
    except (jwt.InvalidTokenError, ValueError):
        raise ApiError("auth_token_invalid", "auth_token is not a well-formed JWT", 401) from None
    algorithm = header.get("alg")
    if not isinstance(algorithm, str) or algorithm not in algorithms:
        raise ApiError(
            "auth_algorithm_not_allowed",
            f"JWT algorithm {algorithm!r} is not allowed for this model (allowed: {sorted(algorithms)})",
            401,
        )
    if algorithm in RSA_ALGORITHMS:
        key = _public_key(settings.get("public_key") or settings.get("pub_key"))
    else:
        key = settings["secret"]
    options = {"require": ["exp"]} if settings.get("require_expiry", True) else {}
    try:
        return jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=settings.get("audience"),
            issuer=settings.get("issuer"),
            leeway=float(settings.get("leeway", 0)),
            options=options,
        )
    except jwt.ExpiredSignatureError:
        raise ApiError("auth_token_expired", "auth_token has expired; get a new one", 401) from None
    except jwt.MissingRequiredClaimError as exc:
        raise ApiError("auth_token_invalid", f"auth_token lacks the {exc.claim!r} claim", 401) from None
    except jwt.InvalidTokenError as exc:
        raise ApiError("auth_token_invalid", f"auth_token was refused: {exc}", 401) from None


def _verify_with_endpoint(settings: dict[str, Any], token: str) -> dict[str, Any]:
    timeout = float(settings.get("timeout", DEFAULT_ENDPOINT_TIMEOUT))
    try:
        answer = requests.post(settings["url"], json={"auth_token": token}, timeout=timeout)
    except requests.RequestException:
        raise ApiError(
            "auth_endpoint_unavailable",
            "the model's token verification service did not answer; try again later",
            503,
        ) from None
    if 200 <= answer.status_code < 300:
        return {}
    raise ApiError("auth_token_invalid", "auth_token was refused by the verification service", 401)
