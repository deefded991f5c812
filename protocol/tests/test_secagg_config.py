"""server_config.secure_aggregation: validated as hosting needs it, and documented from the
model that validates it."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedgrid_protocol.configs import (
    ConfigInvalid,
    SecureAggregation,
    markdown_table,
    validate_server_config,
)

ROOT = Path(__file__).resolve().parents[2]


def test_true_means_the_defaults_and_false_means_off():
    config = validate_server_config({"secure_aggregation": True, "max_diffs": 5})
    assert config.secure_aggregation == SecureAggregation()
    assert config.secure_aggregation.params().modulus == 2**32
    assert validate_server_config({"secure_aggregation": False}).secure_aggregation is None


@pytest.mark.parametrize("raw, field, words", [
    ({"secure_aggregation": {"modulus": 1000}}, "server_config.secure_aggregation", "power of two"),
    ({"secure_aggregation": {"clip": 1}}, "server_config.secure_aggregation.clip", "not a setting"),
    ({"secure_aggregation": True, "max_diffs": 1, "max_workers": 1}, "server_config",
     "max_workers between 2 and 1024"),
    ({"secure_aggregation": {"quantization_range": 2**20}, "max_diffs": 4096}, "server_config",
     "max_workers between 2 and 4096"),
])
def test_a_bad_secure_aggregation_setting_is_refused_naming_it(raw, field, words):
    with pytest.raises(ConfigInvalid) as caught:
        validate_server_config(raw)
    assert caught.value.field == field and words in caught.value.message, caught.value.message


def test_the_docs_table_is_the_models():
    docs = (ROOT / "docs/secure-aggregation.md").read_text()
    assert markdown_table(SecureAggregation) in docs, (
        "docs/secure-aggregation.md's parameter table is out of date: paste "
        "fedgrid_protocol.configs.markdown_table(SecureAggregation)")


def dp(**settings):
    return {"noise_multiplier": 1.0, "population": 100, "clip": 0.25, **settings}


def test_with_device_clipping_the_quantisation_range_follows_the_clip_unless_given():
    config = validate_server_config({"secure_aggregation": True,
                                     "differential_privacy": dp(clip_at="device")})
    assert config.secure_aggregation.clipping_range == 0.25
    assert config.secure_aggregation.params().clipping_range == 0.25  # what the Node unmasks with
    # Derived, not set: what is stored is what the researcher wrote.
    assert config.stored()["secure_aggregation"] == {}
    given = validate_server_config({"secure_aggregation": {"clipping_range": 2},
                                    "differential_privacy": dp(clip_at="device")})
    assert given.secure_aggregation.clipping_range == 2
    # Only device clipping bounds every coordinate by the clip.
    assert validate_server_config({"secure_aggregation": True}).secure_aggregation.clipping_range == 8


def test_a_device_learns_the_clip_norm_and_refuses_keys_it_does_not_know():
    from fedgrid_protocol.configs import SecureCycleSettings

    answer = {**SecureAggregation(clipping_range=0.25).model_dump(), "clip_norm": 0.25}
    settings = SecureCycleSettings(**answer)
    assert settings.clip_norm == 0.25 and settings.params() == SecureAggregation(
        clipping_range=0.25).params()
    with pytest.raises(ValueError):
        SecureCycleSettings(**answer, clip_everything=True)
    # The researcher's secure_aggregation has no clip_norm: the Node derives it.
    with pytest.raises(ConfigInvalid, match="not a setting"):
        validate_server_config({"secure_aggregation": {"clip_norm": 1}})
