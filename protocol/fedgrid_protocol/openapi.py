"""OpenAPI 3.1 documents generated from the protocol's models.

A server passes its events (served at `<prefix>/<event>`) and the paths it writes by hand (health,
dashboards...); the events' request and answer schemas come from `events.py`, so the document can
never disagree with what the server validates. Path templates use OpenAPI's `{name}` syntax.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, get_args

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .events import BINARY, ErrorAnswer, Event

REF = "#/components/schemas/{model}"
ERROR = {"$ref": REF.format(model="ErrorAnswer")}
BINARY_SCHEMA = {"type": "string", "format": "binary"}
ADMIN = [{"adminToken": []}]


def error_responses(*statuses: int) -> dict[str, Any]:
    return {
        str(status): {"description": "error", "content": {"application/json": {"schema": ERROR}}}
        for status in statuses
    }


def _answer_models(answer: Any) -> list[type[BaseModel]]:
    if answer == BINARY:
        return []
    return list(get_args(answer)) or [answer]


def schema_ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _query_parameters(model: type[BaseModel], schemas: dict[str, Any],
                      skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    properties = schemas[model.__name__].get("properties", {})
    required = set(schemas[model.__name__].get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": schema}
        for name, schema in properties.items()
        if name not in skip
    ]


def model_schemas(models: Iterable[type[BaseModel]]) -> dict[str, Any]:
    """Component schemas of request models (validation mode) and the models they use, by name.

    For routes that are not events (the Network's): reference them with `schema_ref`, or turn a
    model's fields into `parameters`.
    """
    pairs = [(model, "validation") for model in dict.fromkeys(models)]
    _, definitions = models_json_schema(pairs, ref_template=REF)
    return definitions.get("$defs", {})


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """A required JSON request body: the model's schema."""
    return {"required": True, "content": {"application/json": {"schema": schema_ref(model)}}}


def parameters(model: type[BaseModel], schemas: dict[str, Any],
               where: Literal["query", "path"] = "query") -> list[dict[str, Any]]:
    """The model's fields as query (or path) parameters; a path parameter is always required."""
    found = _query_parameters(model, schemas)
    if where == "path":
        found = [{**parameter, "in": "path", "required": True} for parameter in found]
    return found


def _operation(event: Event, schemas: dict[str, Any]) -> dict[str, Any]:
    answers = _answer_models(event.answer)
    if answers:
        schema = (schema_ref(answers[0]) if len(answers) == 1
                  else {"oneOf": [schema_ref(model) for model in answers]})
        ok = {"description": "success", "content": {"application/json": {"schema": schema}}}
    else:
        ok = {"description": "bytes", "content": {"application/octet-stream": {"schema": BINARY_SCHEMA}}}
    operation: dict[str, Any] = {
        "operationId": event.name.replace("-", "_"),
        "summary": event.summary,
        "responses": {"200": ok, **error_responses(*event.errors)},
    }
    if event.admin:
        operation["security"] = ADMIN
    request = schema_ref(event.request)
    if event.method == "GET":
        operation["parameters"] = _query_parameters(event.request, schemas)
    elif len(event.binary_fields) == 1:
        # The one binary field (a report's diff, an evaluation set) as the raw body, the other
        # fields in the query string; or multipart; or PyGrid's JSON with the bytes in base64.
        (field,) = event.binary_fields
        operation["parameters"] = _query_parameters(event.request, schemas, skip=(field,))
        # A report's diff is optional (an evaluation's report has none): then so is the body.
        required = event.request.model_fields[field].is_required()
        operation["requestBody"] = {"required": required, "content": {
            "application/octet-stream": {"schema": BINARY_SCHEMA},
            "multipart/form-data": {"schema": request},
            "application/json": {"schema": {"type": "object",
                                            "description": "the JSON form (PyGrid's, or older "
                                                           f"SDKs'): the {field} in base64"}},
        }}
    elif event.binary_fields:
        operation["requestBody"] = {"required": True, "content": {
            "multipart/form-data": {"schema": request},
            "application/json": {"schema": {"type": "object",
                                            "description": "PyGrid's form: bytes in base64"}},
        }}
    else:
        operation["requestBody"] = {"required": True,
                                    "content": {"application/json": {"schema": request}}}
    return operation


def component_schemas(events: dict[str, Event]) -> dict[str, Any]:
    models: list[tuple[type[BaseModel], str]] = [(ErrorAnswer, "serialization")]
    for event in events.values():
        models.append((event.request, "validation"))
        models += [(model, "serialization") for model in _answer_models(event.answer)]
    _, definitions = models_json_schema(list(dict.fromkeys(models)), ref_template=REF)
    return definitions.get("$defs", {})


def document(title: str, version: str, *, prefix: str, events: dict[str, Event],
             other_paths: dict[str, Any], description: str = "") -> dict[str, Any]:
    """The server's OpenAPI document: its events under `prefix`, then `other_paths`."""
    schemas = component_schemas(events)
    paths = {f"{prefix}/{name}": {event.method.lower(): _operation(event, schemas)}
             for name, event in events.items()}
    for path, operations in other_paths.items():
        paths.setdefault(path, {}).update(operations)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
            # `Error`: the name hand-written paths used before the schemas were generated.
            "schemas": {**schemas, "Error": ERROR},
        },
    }
