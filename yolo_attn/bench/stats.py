"""Interval statistics of the benchmark: paired seed-by-seed differences and the median of per-round ratios.

- Accuracy: runs of one seed see the same data order (Ultralytics seeds the loader's shuffle with the training seed),
  so each model is compared with the reference seed by seed. The mean of the per-seed differences gets a two-sided
  Student t interval over seeds (``mean ± t(0.975, n-1) * sd / sqrt(n)``). When that interval contains 0 the table
  says "no detectable difference": with these seeds the data cannot tell the two models apart.
- Latency: a model's ratio to the reference is the median of its per-round ratios, with the distribution-free
  order-statistics interval of the median (two order statistics chosen from the binomial(n, 1/2) distribution); it
  assumes only that rounds are independent, not that ratios are normal.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

__all__ = ["CONFIDENCE", "NO_DIFFERENCE", "median_interval", "paired_difference", "t_critical", "t_interval"]

CONFIDENCE = 0.95
NO_DIFFERENCE = "no detectable difference"


def t_critical(df: int, confidence: float = CONFIDENCE) -> float:
    """Return the two-sided Student t quantile ``t((1 + confidence) / 2, df)``.

    Args:
        df (int): Degrees of freedom, >= 1.
        confidence (float): Coverage of the interval, in (0, 1).

    Returns:
        (float): The quantile, e.g. 4.303 for df=2 at 95%.
    """
    from scipy.stats import t  # an Ultralytics dependency; imported here to keep `import yolo_attn` light

    if df < 1:
        raise ValueError(f"t_critical: df must be >= 1, got {df}")
    return float(t.ppf((1 + confidence) / 2, df))


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> dict:
    """Return the mean of ``values`` and its two-sided t interval.

    Args:
        values (Sequence[float]): Observations (here: per-seed differences).
        confidence (float): Coverage of the interval.

    Returns:
        (dict): ``mean``, ``std`` (sample), ``n``, ``t`` and ``interval`` ([low, high]); ``std``, ``t`` and
            ``interval`` are None for fewer than 2 values.
    """
    values = [float(v) for v in values]
    if not values:
        raise ValueError("t_interval: no values")
    mean = statistics.fmean(values)
    if len(values) < 2:
        return {"mean": mean, "std": None, "n": 1, "t": None, "interval": None}
    sd = statistics.stdev(values)
    t = t_critical(len(values) - 1, confidence)
    half = t * sd / math.sqrt(len(values))
    return {"mean": mean, "std": sd, "n": len(values), "t": t, "interval": [mean - half, mean + half]}


def paired_difference(reference: Mapping[int, float], other: Mapping[int, float],
                      confidence: float = CONFIDENCE) -> dict:
    """Compare a metric of one model with the reference model, seed by seed.

    Args:
        reference (Mapping[int, float]): Seed -> the reference model's value.
        other (Mapping[int, float]): Seed -> the compared model's value.
        confidence (float): Coverage of the interval.

    Returns:
        (dict): ``seeds`` (those both have), ``per_seed`` (other - reference, in seed order), the ``t_interval`` fields
            of those differences, ``confidence``, ``method`` and ``detectable``: False when the interval contains 0,
            True when it excludes 0, None when there is no interval (one seed).
    """
    seeds = [s for s in reference if s in other]
    if not seeds:
        raise ValueError("paired_difference: the two models share no seed")
    diffs = [float(other[s]) - float(reference[s]) for s in seeds]
    res = t_interval(diffs, confidence)
    lo_hi = res["interval"]
    detectable = None if lo_hi is None else not (lo_hi[0] <= 0.0 <= lo_hi[1])
    return {"seeds": seeds, "per_seed": diffs, **res, "confidence": confidence, "method": "t interval over seeds",
            "detectable": detectable}


def median_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> dict:
    """Return the median of ``values`` and the order-statistics confidence interval of the median.

    The interval is ``[x_(k), x_(n+1-k)]`` of the sorted values with the largest k such that
    ``P(B <= k - 1) <= (1 - confidence) / 2`` for B ~ binomial(n, 1/2); its exact coverage is ``1 - 2 P(B <= k - 1)``.

    Args:
        values (Sequence[float]): Observations (here: per-round latency ratios).
        confidence (float): The least coverage wanted.

    Returns:
        (dict): ``median``, ``interval`` ([low, high], None when there are too few values: 6 at 95%) and
            ``coverage`` (the interval's exact coverage, None without an interval).
    """
    x = sorted(float(v) for v in values)
    n = len(x)
    if not n:
        raise ValueError("median_interval: no values")
    # exact integer arithmetic: cdf counts outcomes of 2**n; the tail probability in millionths
    tail, k, cdf = round((1 - confidence) / 2 * 10**6), 0, 0
    for j in range(n):
        cdf += math.comb(n, j)
        if cdf * 10**6 > tail * 2**n:
            break
        k = j + 1
    if k == 0:
        return {"median": statistics.median(x), "interval": None, "coverage": None}
    below = sum(math.comb(n, j) for j in range(k))
    return {"median": statistics.median(x), "interval": [x[k - 1], x[n - k]], "coverage": 1 - 2 * below / 2**n}
