"""ε for a process's completed cycles: RDP accounting of the Poisson-sampled Gaussian mechanism.

Each completed DP cycle is one step of the sampled Gaussian mechanism with the cycle's noise
multiplier and sampling rate (``max_diffs / population``; with secure aggregation
``max_workers / population``: the cohort, whose every survivor is in the sum). The steps are
stored in the cycles' summaries (``privacy.noise_multiplier``, ``privacy.sampling_rate``), so a
restarted Node recomputes the same ε from the database. The computation is Google's ``dp-accounting`` (Rényi
DP, Mironov 2017; Mironov, Talwar, Zhang 2019 for the sampled Gaussian); RDP is a slight
over-estimate of ε next to PLD accounting, never an under-estimate.

Amplification by sampling assumes each device takes part in a cycle with probability ``q``
independently of the others: it holds when the population is right and devices are selected at
random (``pool_selection: random`` with devices asking at random times), not when the same few
devices are always first.
"""

from __future__ import annotations

import importlib
import sys
from collections import Counter
from collections.abc import Iterable

import gevent

Step = tuple[float, float]  # (noise multiplier, sampling rate)


def sampled_per_cycle(config) -> int:
    """The devices whose updates one cycle may fold: its goal, or under secure aggregation its
    cohort (`max_workers`), every survivor of which is in the unmasked sum."""
    return config.max_diffs if config.secure_aggregation is None else config.max_workers


def sampling_rate(config) -> float:
    return min(1.0, sampled_per_cycle(config) / config.differential_privacy.population)


def target_delta(config) -> float:
    dp = config.differential_privacy
    return dp.delta if dp.delta is not None else dp.population ** -1.1


def load_in_background() -> None:
    """Import the accountant's library on the thread pool, once a differentially private
    process has an open cycle: its first close would otherwise spend the ~0.7 s import on the
    hub, where every device waits for it."""
    if "dp_accounting.rdp" not in sys.modules:
        gevent.get_hub().threadpool.spawn(importlib.import_module, "dp_accounting.rdp")


def epsilon(steps: Iterable[Step], delta: float) -> float:
    """ε after composing ``steps`` (identical steps are composed at once)."""
    # Imported on first use: the library (scipy, its mechanisms) takes ~0.7 s to import, which
    # every Node start would pay though most processes are not differentially private.
    import dp_accounting
    from dp_accounting import rdp

    accountant = rdp.RdpAccountant()
    for (noise_multiplier, rate), count in Counter(steps).items():
        accountant.compose(
            dp_accounting.PoissonSampledDpEvent(
                rate, dp_accounting.GaussianDpEvent(noise_multiplier)),
            count,
        )
    return float(accountant.get_epsilon(delta))


def steps_of(summaries: Iterable[dict | None]) -> list[Step]:
    """The accountant's steps recorded in completed cycles' summaries (non-DP ones skipped)."""
    steps = []
    for summary in summaries:
        privacy = (summary or {}).get("privacy")
        if privacy:
            steps.append((float(privacy["noise_multiplier"]), float(privacy["sampling_rate"])))
    return steps
