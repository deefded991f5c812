"""The JSON-Schema-to-TypeScript converter behind the JavaScript SDK's wire types."""

from __future__ import annotations

from typing import Any, Literal

import pytest
from pydantic import BaseModel

from fedgrid_protocol import export, typescript
from fedgrid_protocol.events import BINARY, EVENTS, Event, Payload
from fedgrid_protocol.typescript import UnsupportedSchema, declaration, type_of


def test_every_event_has_its_request_and_answer_types():
    text = "\n".join(typescript.render(typescript.wire_schemas()))
    requests = text[text.index("export interface EventRequests {"):]
    for name, event in EVENTS.items():
        assert f"export interface {event.request.__name__} " in text
        assert f"  '{name}': {event.request.__name__};" in requests
        if event.answer == BINARY:
            assert f"  '{name}': Uint8Array;" in requests
        for model in typescript.answer_models(event.answer):
            assert f"export interface {model.__name__} " in text
    assert "  'cycle-request': AcceptedAnswer | RejectedAnswer;" in text
    assert "export interface ErrorAnswer {\n  error: ErrorBody;\n}" in text


def test_the_wire_types_follow_the_models():
    text = "\n".join(typescript.render(typescript.wire_schemas()))
    assert "  status: 'accepted';\n  request_key: string;" in text
    assert "  wait?: number | null;" in text and "  notify?: boolean | null;" in text
    assert "  diff?: Uint8Array | null;" in text and "  metrics?: Record<string, number> | null;" in text
    assert "  plans?: Record<string, Uint8Array>;" in text
    assert "  checkpoint?: number | 'latest' | null;" in text
    assert "  receive_operations_as?: 'list' | 'torchscript' | 'tfjs' | null;" in text
    assert "Constraints: minimum 0; maximum 30." in text  # bounds in the doc comment
    # An open answer (extra="allow") lists its fields without an index signature, so that
    # AcceptedAnswer['renamed_field'] fails the SDK's typecheck; a map keeps one.
    accepted = text[text.index("export interface AcceptedAnswer {"):]
    assert "[key: string]" not in accepted[:accepted.index("}")]
    assert " * Servers may send more fields than these.\n */\nexport interface AcceptedAnswer {" in text
    assert "export interface Answer {\n  [key: string]: unknown;\n}" in text
    assert " any" not in text and ": any" not in text


def test_the_output_is_deterministic_and_sorted():
    wire = typescript.wire_schemas()
    assert list(wire["definitions"]) == sorted(wire["definitions"])
    assert list(wire["events"]) == sorted(wire["events"])
    assert typescript.render(wire) == typescript.render(typescript.wire_schemas())
    assert "wire types" in export.render_types(export.artefacts())


@pytest.mark.parametrize(("schema", "expected"), [
    ({"type": "string"}, "string"),
    ({"type": "string", "format": "binary"}, "Uint8Array"),
    ({"type": "integer"}, "number"),
    ({"type": "array", "items": {"type": "boolean"}}, "boolean[]"),
    ({"type": "array", "items": {"anyOf": [{"type": "number"}, {"type": "null"}]}}, "(number | null)[]"),
    ({"type": "object", "additionalProperties": {"type": "integer"}}, "Record<string, number>"),
    ({"type": "object", "additionalProperties": True}, "Record<string, unknown>"),
    ({"type": "object", "properties": {}, "additionalProperties": False}, "Record<string, never>"),
    ({"$ref": "#/$defs/ErrorBody"}, "ErrorBody"),
    ({"const": "it's"}, "'it\\'s'"),
    ({"enum": ["a", 1, None]}, "'a' | 1 | null"),
    ({"type": "object", "properties": {"a-b": {"type": "string"}}, "required": []}, "{ 'a-b'?: string; }"),
])
def test_what_the_converter_translates(schema: dict[str, Any], expected: str):
    assert type_of(schema, "x") == expected


@pytest.mark.parametrize(("schema", "complaint"), [
    ({}, "would be any"),
    ({"allOf": [{"$ref": "#/$defs/A"}]}, "allOf"),
    ({"type": ["string", "null"]}, "type"),
    ({"type": "array"}, "without items"),
    ({"type": "array", "prefixItems": [{"type": "string"}]}, "prefixItems"),
    ({"type": "string", "format": "byte"}, "format"),
    ({"$ref": "#/components/schemas/A"}, "is not #/\\$defs"),
    ({"type": "object", "properties": {"a": {"type": "string"}},
      "additionalProperties": {"type": "string"}}, "properties next to"),
    ({"type": "object", "properties": {}, "required": ["a"]}, "not among its properties"),
    ({"type": "object"}, "says nothing about its fields"),
    ({"type": "string", "deprecated": True}, "deprecated"),
])
def test_anything_else_fails_loudly(schema: dict[str, Any], complaint: str):
    with pytest.raises(UnsupportedSchema, match=complaint):
        type_of(schema, "x")


def test_a_definition_name_must_be_an_identifier():
    with pytest.raises(UnsupportedSchema, match="not a TypeScript identifier"):
        declaration("Model-Input", {"type": "object", "properties": {}}, [])


def test_a_model_with_an_any_field_is_refused_not_exported_as_any():
    class Loose(Payload):
        anything: Any

    class Fine(BaseModel):
        status: Literal["success"]

    events = {"loose": Event(name="loose", summary="", method="POST", request=Loose, answer=Fine)}
    wire = typescript.wire_schemas(events)
    assert wire["events"] == {"loose": {"request": "Loose", "answer": ["Fine"]}}
    with pytest.raises(UnsupportedSchema, match=r"Loose\.anything"):
        typescript.render(wire)
