"""The events' request models: bounds, lax numbers from query strings, refusals that name the field."""

from __future__ import annotations

import pytest

from fedgrid_protocol.errors import ApiError
from fedgrid_protocol.events import EVENTS, CycleRequest, HostTrainingRequest, ReportRequest
from fedgrid_protocol.validation import validate

REPORT = {"worker_id": "w1", "request_key": "k1", "diff": b"\x00", "num_samples": 5}


def refusal(model, data, **kwargs) -> ApiError:
    with pytest.raises(ApiError) as caught:
        validate(model, data, **kwargs)
    return caught.value


def test_query_string_numbers_are_numbers_and_empty_fields_are_absent():
    fields = validate(CycleRequest, {"worker_id": "w1", "model": "m", "wait": "20", "ping": "3.5",
                                     "version": "", "download": None})
    assert (fields.wait, fields.ping, fields.version, fields.download) == (20.0, 3.5, None, None)
    assert validate(ReportRequest, {**REPORT, "num_samples": "7"}).num_samples == 7


def test_a_misspelt_field_is_refused_with_the_closest_name():
    error = refusal(CycleRequest, {"worker_id": "w1", "model": "m", "wiat": 5})
    assert error.code == "invalid_request" and error.details == {"field": "wiat"}
    assert "did you mean 'wait'" in error.message


@pytest.mark.parametrize("bad", [True, "five", float("nan"), -1, 31])
def test_wait_must_be_a_number_of_seconds_in_range(bad):
    error = refusal(CycleRequest, {"worker_id": "w1", "model": "m", "wait": bad})
    assert error.details == {"field": "wait"} and "wait" in error.message


@pytest.mark.parametrize("name", ["a\r\nb", "nul\x00", "x" * 256])
def test_names_are_bounded_and_free_of_control_characters(name):
    error = refusal(HostTrainingRequest, {"name": name, "model": b"\x00"})
    assert error.details == {"field": "name"}


def test_report_fields_keep_their_own_codes():
    codes = EVENTS["report"].field_codes
    assert refusal(ReportRequest, {**REPORT, "num_samples": True}, field_codes=codes).code == (
        "num_samples_invalid")
    assert refusal(ReportRequest, {**REPORT, "num_samples": 0}, field_codes=codes).code == (
        "num_samples_invalid")
    bad_metric = refusal(ReportRequest, {**REPORT, "metrics": {"loss": float("inf")}},
                         field_codes=codes)
    assert bad_metric.code == "metrics_invalid" and bad_metric.details == {"field": "metrics.loss"}
    assert refusal(ReportRequest, {**REPORT, "diff": b""}).details == {"field": "diff"}
    # Without a diff is an evaluation assignment's report: whether one is needed depends on the
    # assignment, so the Node decides (report_diff_missing / report_diff_unexpected).
    metrics_only = validate(ReportRequest, {"worker_id": "w1", "request_key": "k1",
                                            "num_samples": 1, "metrics": {"accuracy": 0.5}})
    assert metrics_only.diff is None


def test_huge_ids_are_refused_not_overflowed():
    error = refusal(EVENTS["get-plan"].request, {"worker_id": "w", "request_key": "k",
                                                 "plan_id": 10**20})
    assert error.details == {"field": "plan_id"}


def test_every_event_has_a_request_model_that_forbids_unknown_fields():
    for event in EVENTS.values():
        assert event.request.model_config.get("extra") == "forbid", event.name


def test_pygrid_fields_are_accepted_for_compatibility():
    host = validate(HostTrainingRequest, {"name": "m", "version": "1", "model": b"\x00",
                                          "protocols": {}, "plans": {"training_plan": b"\x01"}})
    assert host.protocols == {} and set(host.plans) == {"training_plan"}
    plan = validate(EVENTS["get-plan"].request, {"worker_id": "w", "request_key": "k",
                                                 "plan_id": "3", "receive_operations_as": "list"})
    assert plan.plan_id == 3


def _patterns(schema):
    if isinstance(schema, dict):
        if isinstance(schema.get("pattern"), str):
            yield schema["pattern"]
        for value in schema.values():
            yield from _patterns(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _patterns(value)


def test_every_pattern_a_request_uses_is_explained_in_words():
    from fedgrid_protocol import network
    from fedgrid_protocol.validation import PATTERN_WORDS

    models = [event.request for event in EVENTS.values()]
    models += [network.JoinRequest, network.HeartbeatRequest, network.LeaveRequest,
               network.ModelQuery]
    used = {pattern for model in models for pattern in _patterns(model.model_json_schema())}
    assert used and used <= set(PATTERN_WORDS), sorted(used - set(PATTERN_WORDS))
    error = refusal(CycleRequest, {"worker_id": "a b", "model": "m"})
    assert error.message == "field 'worker_id' may hold only letters, digits, '_' and '-' (got 'a b')"
