"""TypeScript declarations from the events' JSON Schema: the JavaScript SDK's wire types.

`wire_schemas()` collects the JSON Schema of every event's request (validation mode: what a server
accepts) and answer (serialization mode: what a server sends) with pydantic's
`models_json_schema`; `render()` turns those definitions into TypeScript interfaces, plus the maps
`EventRequests` and `EventAnswers` (event name -> type). `export.py` writes them into
`clients/js/types/protocol.generated.d.ts`.

The converter handles exactly what these schemas use, and raises `UnsupportedSchema` on anything
else, so a new kind of field fails the export instead of turning into `any`:

- ``{"type": "object"}`` with ``properties`` / ``required``: an interface (a definition) or an
  inline object type; a property not in ``required`` is optional (``name?:``);
- ``additionalProperties``: a schema makes a map (``Record<string, T>``); ``true`` on an object
  without properties (``dict[str, Any]``) is ``Record<string, unknown>``, but on one with
  properties (an answer model's ``extra="allow"``) only says so in the doc comment: an index
  signature ``[key: string]: unknown`` would make ``AcceptedAnswer['no_such_field']`` a valid
  type (``unknown``), so a field renamed in the protocol would not fail the SDK's typecheck, and
  TypeScript's object types accept extra fields anyway; ``false`` or absent adds nothing
  (pydantic omits it for models that ignore extra fields, and never sends those);
- ``patternProperties`` (a ``dict`` whose key type has a pattern): ``Record<string, T>``: TypeScript
  cannot constrain keys by a pattern, so the pattern only goes in the doc comment;
- ``string`` / ``number`` / ``integer`` (``number``: no bigint, so ids above 2**53 lose
  precision in JavaScript anyway) / ``boolean`` / ``null``; ``{"type": "string", "format":
  "binary"}`` (the protocol's blobs) is ``Uint8Array``;
- ``const`` and ``enum`` of strings, numbers, booleans, null: literal types;
- ``anyOf`` / ``oneOf``: a union (``Optional[X]`` is ``anyOf [X, null]``: ``X | null``);
- ``array`` with ``items``: ``T[]``;
- ``$ref`` to ``#/$defs/<Name>``: the type ``Name``.

Not supported (each raises): ``allOf``, ``not``, ``if``/``then``/``else``, ``prefixItems``
(tuples), an ``array`` without ``items``, ``type`` lists, the empty schema ``{}`` (``Any``: it
would be ``any``), an ``object`` with neither ``properties`` nor ``additionalProperties`` /
``patternProperties`` (any object), ``properties`` next to an ``additionalProperties`` or
``patternProperties`` schema (every property would have to fit the map's type), ``$ref`` outside
``#/$defs``, definition names that are not TypeScript identifiers (pydantic's ``Model-Input`` /
``Model-Output`` when a model's two modes differ), and any keyword not listed here or below.
Validation keywords TypeScript cannot express (lengths, patterns, bounds, ``propertyNames``...)
are not types: they go into each property's doc comment. ``title``, ``default`` and ``examples``
are ignored; ``description`` is the doc comment.

The output is deterministic: definitions and event maps sorted by name, properties and union
members in the schema's order (the models' field order).
"""

from __future__ import annotations

import json
import re
from typing import Any, get_args

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .events import BINARY, EVENTS, ErrorAnswer, Event

REF_PREFIX = "#/$defs/"
IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")

# Keywords read for the type itself.
TYPE_KEYWORDS = {"type", "format", "const", "enum", "anyOf", "oneOf", "$ref", "items",
                 "properties", "required", "additionalProperties", "patternProperties"}
# Annotations: `description` becomes the doc comment, the others carry nothing a type needs.
ANNOTATIONS = {"title", "description", "default", "examples"}
# Validation keywords a type cannot express: written into the doc comment, in this order.
CONSTRAINTS = ("minLength", "maxLength", "pattern", "minimum", "exclusiveMinimum", "maximum",
               "exclusiveMaximum", "multipleOf", "minItems", "maxItems", "uniqueItems",
               "minProperties", "maxProperties", "propertyNames")
# Formats that are plain strings in TypeScript (`binary` is the one that changes the type).
STRING_FORMATS = {"date-time", "date", "time", "duration", "email", "uri", "uuid"}


class UnsupportedSchema(ValueError):
    """A JSON Schema construct the converter does not translate (see the module docstring)."""


# ------------------------------------------------------------------------------ the schemas

def answer_models(answer: Any) -> list[type[BaseModel]]:
    """The models an event answers: one, the members of a union, or none for bytes."""
    if answer == BINARY:
        return []
    return list(get_args(answer)) or [answer]


def wire_schemas(events: dict[str, Event] | None = None) -> dict[str, Any]:
    """The events' request and answer schemas as JSON: ``definitions`` (name -> JSON Schema) and
    ``events`` (name -> {"request": name, "answer": [names] or "binary"}). ErrorAnswer, the
    failure every event may answer, is among the definitions."""
    events = EVENTS if events is None else events
    models: list[tuple[type[BaseModel], str]] = [(ErrorAnswer, "serialization")]
    for event in events.values():
        models.append((event.request, "validation"))
        models += [(model, "serialization") for model in answer_models(event.answer)]
    keys, schema = models_json_schema(list(dict.fromkeys(models)),
                                      ref_template=REF_PREFIX + "{model}")
    definitions = schema.get("$defs", {})

    def name(model: type[BaseModel], mode: str) -> str:
        ref = keys[(model, mode)]["$ref"]
        return ref.removeprefix(REF_PREFIX)

    return {
        "definitions": {key: definitions[key] for key in sorted(definitions)},
        "error": name(ErrorAnswer, "serialization"),
        "events": {
            event_name: {
                "request": name(event.request, "validation"),
                "answer": (BINARY if event.answer == BINARY else
                           [name(model, "serialization") for model in answer_models(event.answer)]),
            }
            for event_name, event in sorted(events.items())
        },
    }


# ------------------------------------------------------------------------------ the converter

def _literal(value: Any, where: str) -> str:
    if isinstance(value, str):
        # JSON's escapes suit TypeScript; only the quotes differ.
        return "'" + json.dumps(value, ensure_ascii=False)[1:-1].replace('\\"', '"').replace(
            "'", "\\'") + "'"
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    raise UnsupportedSchema(f"{where}: a literal of type {type(value).__name__}")


def _check_keywords(schema: dict[str, Any], where: str) -> None:
    unknown = sorted(set(schema) - TYPE_KEYWORDS - ANNOTATIONS - set(CONSTRAINTS))
    if unknown:
        raise UnsupportedSchema(f"{where}: JSON Schema keyword(s) {unknown} are not supported")


def _key(name: str) -> str:
    return name if IDENTIFIER.match(name) else _literal(name, name)


def _union(members: list[str]) -> str:
    return " | ".join(dict.fromkeys(members))  # the same type twice is once


def type_of(schema: Any, where: str) -> str:
    """The TypeScript type of one schema (raises UnsupportedSchema; `where` names it)."""
    if not isinstance(schema, dict) or not schema:
        raise UnsupportedSchema(f"{where}: {schema!r} says nothing about the type (it would be any)")
    _check_keywords(schema, where)
    if "$ref" in schema:
        ref = schema["$ref"]
        name = ref.removeprefix(REF_PREFIX)
        if not ref.startswith(REF_PREFIX) or not IDENTIFIER.match(name):
            raise UnsupportedSchema(f"{where}: $ref {ref!r} is not #/$defs/<identifier>")
        return name
    if "const" in schema:
        return _literal(schema["const"], where)
    if "enum" in schema:
        return _union([_literal(value, where) for value in schema["enum"]])
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            return _union([type_of(member, f"{where}.{combinator}[{i}]")
                           for i, member in enumerate(schema[combinator])])
    kind = schema.get("type")
    if kind == "string":
        fmt = schema.get("format")
        if fmt == "binary":
            return "Uint8Array"
        if fmt is not None and fmt not in STRING_FORMATS:
            raise UnsupportedSchema(f"{where}: string format {fmt!r}")
        return "string"
    if kind in ("number", "integer"):
        return "number"
    if kind == "boolean":
        return "boolean"
    if kind == "null":
        return "null"
    if kind == "array":
        if "items" not in schema:
            raise UnsupportedSchema(f"{where}: an array without items")
        item = type_of(schema["items"], f"{where}.items")
        return f"({item})[]" if " " in item else f"{item}[]"
    if kind == "object":
        if schema.get("properties") or schema.get("required"):
            return "{ " + " ".join(_members(schema, where, indent=None)) + " }"
        values = _map_values(schema, where)
        if values:
            return f"Record<string, {values}>"
        if "properties" in schema and schema.get("additionalProperties") is False:
            return "Record<string, never>"  # an object that must be empty
        raise UnsupportedSchema(f"{where}: an object that says nothing about its fields")
    raise UnsupportedSchema(f"{where}: type {kind!r}")


def _map_values(schema: dict[str, Any], where: str) -> str | None:
    """The value type of an object's extra keys (None: it has none)."""
    values = []
    extra = schema.get("additionalProperties")
    if extra is True:
        values.append("unknown")
    elif isinstance(extra, dict):
        values.append(type_of(extra, f"{where}.additionalProperties"))
    elif extra not in (None, False):
        raise UnsupportedSchema(f"{where}: additionalProperties {extra!r}")
    for pattern, value in schema.get("patternProperties", {}).items():
        values.append(type_of(value, f"{where}.patternProperties[{pattern!r}]"))
    return _union(values) if values else None


def _constraints(schema: dict[str, Any]) -> list[str]:
    """The validation keywords of a schema (and of its union members), as words."""
    found = []
    for keyword in CONSTRAINTS:
        if keyword in schema:
            value = schema[keyword]
            if keyword == "propertyNames":
                found.append("keys: " + ", ".join(_constraints(value)))
            else:
                found.append(f"{keyword} `{value}`" if keyword == "pattern"
                             else f"{keyword} {json.dumps(value)}")
    for pattern in schema.get("patternProperties", {}):
        found.append(f"keys match `{pattern}`")
    for combinator in ("anyOf", "oneOf"):
        for member in schema.get(combinator, []):
            found += _constraints(member)
    return found


def _doc(lines: list[str], indent: str) -> list[str]:
    """A doc comment (none when there is nothing to say)."""
    text = [part.replace("*/", "*\\/") for line in lines for part in line.splitlines() if part]
    if not text:
        return []
    if len(text) == 1:
        return [f"{indent}/** {text[0]} */"]
    return [f"{indent}/**", *(f"{indent} * {line}" for line in text), f"{indent} */"]


def _members(schema: dict[str, Any], where: str, indent: str | None = "  ") -> list[str]:
    """An object's members: one per property, then the index signature of its extra keys;
    `indent` None renders them inline, without doc comments."""
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    missing = [name for name in required if name not in properties]
    if missing:
        raise UnsupportedSchema(f"{where}: required {missing} are not among its properties")
    lines = []
    for name, prop in properties.items():
        member = f"{_key(name)}{'' if name in required else '?'}: {type_of(prop, f'{where}.{name}')};"
        if indent is None:
            lines.append(member)
            continue
        constraints = _constraints(prop)
        lines += _doc([prop.get("description", ""),
                       ("Constraints: " + "; ".join(constraints) + ".") if constraints else ""], indent)
        lines.append(indent + member)
    if properties and (isinstance(schema.get("additionalProperties"), dict)
                       or schema.get("patternProperties")):
        raise UnsupportedSchema(f"{where}: properties next to an additionalProperties or "
                                "patternProperties schema")
    values = _map_values(schema, where)
    if values and not properties:  # a map; an open object's extras are in its doc comment
        lines.append(f"{indent or ''}[key: string]: {values};")
    return lines


def declaration(name: str, schema: dict[str, Any], doc: list[str]) -> list[str]:
    """One definition: an interface for an object, a type alias for anything else."""
    if not IDENTIFIER.match(name):
        raise UnsupportedSchema(f"definition {name!r} is not a TypeScript identifier")
    open_object = schema.get("additionalProperties") is True and schema.get("properties")
    comment = _doc([schema.get("description", ""), *doc,
                    "Servers may send more fields than these." if open_object else ""], "")
    if schema.get("type") == "object" and "properties" in schema:
        _check_keywords(schema, name)
        members = _members(schema, name)
        if not members:
            return [*comment, f"export interface {name} {{}}"]
        return [*comment, f"export interface {name} {{", *members, "}"]
    return [*comment, f"export type {name} = {type_of(schema, name)};"]


def render(wire: dict[str, Any]) -> list[str]:
    """The declarations of `wire_schemas()`'s output: every definition, then the event maps."""
    uses: dict[str, list[str]] = {wire["error"]: ["the answer of every event that fails"]}
    for event, entry in wire["events"].items():
        uses.setdefault(entry["request"], []).append(f"the request of `{event}`")
        if entry["answer"] != BINARY:
            for model in entry["answer"]:
                uses.setdefault(model, []).append(f"an answer of `{event}`")
    for name, schema in wire["definitions"].items():
        for target in sorted(set(re.findall(r'"\$ref": "#/\$defs/(\w+)"', json.dumps(schema)))):
            uses.setdefault(target, []).append(f"a part of {name}")
    lines = []
    for name, schema in wire["definitions"].items():
        used = uses.get(name)
        lines += declaration(name, schema, [("Wire payload: " + ", ".join(used) + ".") if used else ""])
        lines.append("")
    lines += ["/** Each event's request, by event name: the wire's fields, snake_case. Blobs",
              " *  (`format: binary`) travel as files, a binary body or WebSocket frame blobs. */",
              "export interface EventRequests {"]
    lines += [f"  {_literal(event, event)}: {entry['request']};" for event, entry in wire["events"].items()]
    lines += ["}", "",
              "/** Each event's successful answer, by event name (`Uint8Array`: the answer is bytes).",
              f" *  Failures answer an {wire['error']}. */",
              "export interface EventAnswers {"]
    for event, entry in wire["events"].items():
        answer = "Uint8Array" if entry["answer"] == BINARY else _union(entry["answer"])
        lines.append(f"  {_literal(event, event)}: {answer};")
    lines.append("}")
    return lines
