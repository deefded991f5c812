"""Bearer tokens and the secret files both servers keep in their data directory.

- ``bearer_token`` reads ``Authorization: Bearer <token>`` whatever the header holds: a value that
  is not a string (a WebSocket envelope's field), names another scheme, has no token or is
  absurdly long gives ``None`` (the route answers its coded 401).
- ``tokens_equal`` compares in constant time on bytes (``hmac.compare_digest`` refuses ``str``
  with non-ASCII characters, which a header may well hold), and an empty token never matches.
- ``check_token_text``: the servers' own tokens and secrets are printable ASCII without spaces
  (what an HTTP header carries unchanged); anything else stops the server with a message.
- ``load_or_create_secret`` writes a generated secret atomically (temporary file, fsync, rename;
  mode 0600), so that a crash never leaves an empty file; a file that is empty or whitespace-only
  anyway (an older version's crash, an operator's mistake) is replaced by a new secret, and the
  log says so without the secret. A file that is not UTF-8 text stops the server with a message.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import tempfile
from pathlib import Path

# Tokens are 43 characters (token_urlsafe(32)); operators may choose longer ones, but nothing
# sensible is longer than this, and a longer header is refused before any comparison.
MAX_TOKEN_CHARS = 4096


class SecretFileError(RuntimeError):
    """A secret file exists but cannot be used (the server refuses to start)."""


def bearer_token(authorization: object) -> str | None:
    """The token in ``Bearer <token>``, or ``None`` if the value is anything else."""
    if not isinstance(authorization, str):
        return None
    if len(authorization) > MAX_TOKEN_CHARS + len("Bearer "):
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def tokens_equal(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison on UTF-8 bytes; empty or missing tokens never match."""
    if not isinstance(given, str) or not isinstance(expected, str):
        return False
    if not given.strip() or not expected.strip():
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"),
                               expected.encode("utf-8", "surrogatepass"))


def check_token_text(value: str, what: str) -> str:
    """``value`` if it is usable as a bearer token; otherwise raise `SecretFileError`."""
    if not value.strip():
        raise SecretFileError(f"the {what} is empty; an empty {what} is never valid")
    if not (value.isascii() and value.isprintable()) or any(c.isspace() for c in value):
        raise SecretFileError(f"the {what} must be printable ASCII without spaces (as an HTTP "
                              "header carries it)")
    if len(value) > MAX_TOKEN_CHARS:
        raise SecretFileError(f"the {what} is longer than {MAX_TOKEN_CHARS} characters")
    return value


def write_secret_file(path: Path, secret: str) -> None:
    """Write ``secret`` to ``path`` atomically, readable by the owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                             dir=path.parent)
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(secret + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    # The rename itself is durable only once the directory is synced.
    try:
        directory = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(directory)
    except OSError:
        pass
    finally:
        os.close(directory)


def load_or_create_secret(path: Path, *, what: str = "secret",
                          log: logging.Logger | None = None) -> tuple[str, bool]:
    """The secret kept in ``path``, generating one if the file is absent, empty or whitespace.

    Returns (secret, created). ``what`` names the secret in messages ("admin token").
    """
    log = log or logging.getLogger("fedgrid.server")
    if path.exists():
        try:
            value = path.read_bytes().decode("utf-8").strip()
        except UnicodeDecodeError:
            raise SecretFileError(
                f"{path} is not UTF-8 text, so it cannot hold the {what}; remove it to have a new "
                f"{what} generated, or write the {what} into it") from None
        except OSError as exc:
            raise SecretFileError(f"cannot read the {what} from {path}: {exc.strerror}") from None
        if value:
            try:
                return check_token_text(value, what), False
            except SecretFileError as exc:
                raise SecretFileError(f"{path}: {exc}; fix or remove the file") from None
        log.warning("%s holds no %s (empty or whitespace only); an empty %s is never valid, so a "
                    "new one was generated and stored there", path, what, what)
    secret = secrets.token_urlsafe(32)
    write_secret_file(path, secret)
    return secret, True
