"""Validate an event's fields with its model; a refusal is an `ApiError` naming the field.

Shared by every server so that a bad field reads the same everywhere: the code is
`invalid_request` (or the event's own code for that field, e.g. `num_samples_invalid`), the
message names the field and says what is wrong, and `details.field` is its dotted path. An unknown
field is named too, with the closest known one when it looks like a typo.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import ApiError

MAX_SHOWN_VALUE = 64


def present_fields(data: dict[str, Any]) -> dict[str, Any]:
    """Fields with a value: an empty query parameter or a JSON null means "not given"."""
    return {key: value for key, value in data.items() if value is not None and value != ""}


def validate(model: type[BaseModel], data: dict[str, Any], *,
             field_codes: dict[str, str] | None = None, prefix: str = "") -> BaseModel:
    try:
        return model.model_validate(present_fields(data))
    except ValidationError as exc:
        raise refusal(model, exc, field_codes or {}, prefix) from None


def refusal(model: type[BaseModel], exc: ValidationError, field_codes: dict[str, str],
            prefix: str = "", default_code: str = "invalid_request") -> ApiError:
    first = exc.errors(include_url=False)[0]
    location = [str(part) for part in first["loc"]]
    field = prefix + ".".join(location)
    code = field_codes.get(location[0], default_code) if location else default_code
    if first["type"] == "extra_forbidden":
        known = sorted(model.model_fields)
        close = difflib.get_close_matches(location[-1], known, n=1)
        hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; known: {', '.join(known)}"
        return ApiError(code, f"unknown field '{field}'{hint}", details={"field": field})
    if first["type"] == "missing":
        return ApiError(code, f"field '{field}' is required", details={"field": field})
    reason = first["msg"].removeprefix("Value error, ")
    return ApiError(code, f"field '{field}': {reason[:1].lower()}{reason[1:]}",
                    details={"field": field})
