"""Validate an event's fields with its model; a refusal is an `ApiError` naming the field.

Shared by every server so that a bad field reads the same everywhere: the code is
`invalid_request` (or the event's own code for that field, e.g. `num_samples_invalid`), the
message names the field and says what is wrong, and `details.field` is its dotted path. An unknown
field is named too, with the closest known one when it looks like a typo.
"""

from __future__ import annotations

import difflib
import json
from typing import Any, get_args

from pydantic import AliasChoices, BaseModel, ValidationError

from .errors import ApiError

MAX_SHOWN_VALUE = 64
# No event nests its fields anywhere near this deep; a deeper document is refused as a whole.
MAX_JSON_DEPTH = 64


def load_json(text: str | bytes | bytearray, what: str = "the request body") -> Any:
    """Parse a JSON document from a client; any failure is an `invalid_json` (400) `ApiError`.

    The one way the servers read JSON they were sent (bodies, form fields, query parameters,
    WebSocket frames): invalid text or UTF-8, integers past Python's digit limit, and nesting deeper
    than `MAX_JSON_DEPTH` (which would otherwise exhaust the stack) all read the same."""
    try:
        value = json.loads(text)
    except RecursionError:
        value, too_deep = None, True
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, the int digit limit
        raise ApiError("invalid_json", f"{what} is not valid JSON: {_short(str(exc))}", 400) from None
    else:
        too_deep = _deeper_than(value, MAX_JSON_DEPTH)
    if too_deep:
        raise ApiError("invalid_json", f"{what} nests JSON more than {MAX_JSON_DEPTH} levels deep",
                       400)
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` levels (iteratively: no recursion)."""
    stack = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def number_text(value: float) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


# What each pattern the protocol uses allows, in words (a regex is no help to a person).
PATTERN_WORDS = {
    r"^[^\x00-\x1f\x7f]*$": "must not contain control characters (CR, LF, NUL...)",
    r"^[0-9A-Za-z_-]+$": "may hold only letters, digits, '_' and '-'",
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$": (
        "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"),
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$": (
        "must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"),
    r"^[^\s\x00-\x1f\x7f-\x9f]*$": "must not contain spaces or control characters",
}


def reason(error: dict[str, Any]) -> str:
    """A pydantic error in words a person can act on (`must be at least 1 (got 0)`)."""
    kind, ctx, got = error["type"], error.get("ctx") or {}, error.get("input")
    shown = ""
    if not isinstance(got, dict | list | bytes | bytearray | memoryview):
        shown = f" (got {_short(repr(got))})"
    if kind in ("int_type", "int_from_float", "int_parsing"):
        return f"must be an integer{shown}"
    if kind in ("float_type", "float_parsing"):
        return f"must be a number{shown}"
    if kind == "finite_number":
        return f"must be a finite number{shown}"
    if kind == "bool_type":
        return f"must be true or false{shown}"
    if kind == "string_type":
        return f"must be a string{shown}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "string_pattern_mismatch" and ctx.get("pattern") in PATTERN_WORDS:
        return f"{PATTERN_WORDS[ctx['pattern']]}{shown}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        relation = {"greater_than_equal": ("at least", "ge"), "greater_than": ("greater than", "gt"),
                    "less_than_equal": ("at most", "le"), "less_than": ("less than", "lt")}[kind]
        return f"must be {relation[0]} {number_text(ctx[relation[1]])}{shown}"
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}{shown}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"must be a JSON object{shown}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return error["msg"][:1].lower() + error["msg"][1:]


def _short(text: str) -> str:
    return text if len(text) <= MAX_SHOWN_VALUE else text[: MAX_SHOWN_VALUE - 1] + "…"


def closest(key: str, known: list[str]) -> str | None:
    """The known name a misspelt `key` most likely meant, if any is close."""
    matches = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return matches[0] if matches else None


def _spellings(model: type[BaseModel]) -> list[str]:
    """A model's field names and the other spellings (aliases) it accepts for them."""
    names = set(model.model_fields)
    for field in model.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, str):
            names.add(alias)
        elif isinstance(alias, AliasChoices):
            names.update(choice for choice in alias.choices if isinstance(choice, str))
    return sorted(names)


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        found = _nested_model(argument)
        if found is not None:
            return found
    return None


def _known_at(model: type[BaseModel], location: list[str]) -> list[str]:
    """The fields known where an unknown one was sent: in a nested model for `processes.0.x`."""
    current = model
    for part in location[:-1]:
        if part.isdigit():
            continue
        field = current.model_fields.get(part)
        nested = _nested_model(field.annotation) if field is not None else None
        if nested is None:
            return []
        current = nested
    return _spellings(current)


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
        known = _known_at(model, location)
        close = closest(location[-1], known)
        parent = prefix + "".join(f"{part}." for part in location[:-1])
        hint = (f"; did you mean '{parent}{close}'?" if close
                else f"; known: {', '.join(known)}" if known else "")
        return ApiError(code, f"unknown field '{_short(field)}'{hint}",
                        details={"field": _short(field)})
    if first["type"] == "missing":
        return ApiError(code, f"field '{field}' is required", details={"field": field})
    return ApiError(code, f"field '{field}' {reason(first)}", details={"field": field})
