"""What the Node checks in ``server_config.differential_privacy`` beyond each key's own bounds."""

from __future__ import annotations

from .accountant import epsilon, sampled_per_cycle, sampling_rate, target_delta
from .adaptive_clipping import default_count_stddev

FIELD = "server_config.differential_privacy"


def privacy_problem(config) -> tuple[str, str] | None:
    """(field, message) when the settings cannot run; None when they can (or DP is off)."""
    dp = config.differential_privacy
    if dp is None:
        return None
    secure = config.secure_aggregation is not None
    if secure and dp.clip_at != "device":
        return (f"{FIELD}.clip_at",
                f"{FIELD}.clip_at must be \"device\" with secure_aggregation: the Node sees only "
                "the sum of the cycle's updates, never one it could clip, so each device clips "
                "its own to differential_privacy.clip before masking it")
    if not secure and dp.clip_at == "device":
        return (f"{FIELD}.clip_at",
                f"{FIELD}.clip_at \"device\" needs secure_aggregation (devices clip because the "
                "Node cannot see their updates); without it use \"node\", which clips at the "
                "Node")
    if dp.clip_at == "device":
        adaptive = [key for key in ("target_unclipped_quantile", "clip_learning_rate",
                                    "clipped_count_stddev") if key in dp.model_fields_set]
        if adaptive:
            return (f"{FIELD}.{adaptive[0]}",
                    f"{FIELD}.{adaptive[0]} cannot be given with clip_at \"device\": adaptive "
                    "clipping needs the count of updates within the clip, and under secure "
                    "aggregation the Node sees only the sum; give a fixed clip")
    places = sampled_per_cycle(config)
    if dp.population < places:
        what = "max_workers (the secure cohort)" if secure else "max_diffs"
        return (f"{FIELD}.population",
                f"{FIELD}.population ({dp.population}) cannot be below {what} "
                f"({places}): the sampling rate would exceed 1")
    if dp.target_unclipped_quantile is not None:
        count_stddev = dp.clipped_count_stddev or default_count_stddev(config.max_diffs)
        if dp.noise_multiplier >= 2 * count_stddev:
            return (f"{FIELD}.noise_multiplier",
                    f"{FIELD}.noise_multiplier ({dp.noise_multiplier:g}) must be below 2 × "
                    f"clipped_count_stddev ({count_stddev:g}) with adaptive clipping: the count's "
                    "noise alone would spend the whole budget (Andrew et al. 2021, Theorem 1); "
                    "raise clipped_count_stddev or lower the noise multiplier")
    if dp.target_epsilon is not None:
        first = epsilon([(dp.noise_multiplier, sampling_rate(config))], target_delta(config))
        if first > dp.target_epsilon:
            return (f"{FIELD}.target_epsilon",
                    f"{FIELD}.target_epsilon ({dp.target_epsilon:g}) is below the ε of a single "
                    f"cycle ({first:.3g} at δ = {target_delta(config):.3g}): no cycle could run")
    return None
