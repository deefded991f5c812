"""What the Node checks in ``server_config.differential_privacy`` beyond each key's own bounds."""

from __future__ import annotations

from .accountant import epsilon, sampling_rate, target_delta
from .adaptive_clipping import default_count_stddev

FIELD = "server_config.differential_privacy"


def privacy_problem(config) -> tuple[str, str] | None:
    """(field, message) when the settings cannot run; None when they can (or DP is off)."""
    dp = config.differential_privacy
    if dp is None:
        return None
    if dp.population < config.max_diffs:
        return (f"{FIELD}.population",
                f"{FIELD}.population ({dp.population}) cannot be below max_diffs "
                f"({config.max_diffs}): the sampling rate would exceed 1")
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
