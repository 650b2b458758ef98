"""Timing helpers shared by the bench and the scripts in ``benchmarks/``: interleaved rounds and their summaries.

Every measurement interleaves the things compared: each round runs each callable once, so a change in machine load
(another process, thermal state, the allocator returning memory) hits all of them in the same round, and ratios are
taken per round before any summary.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .stats import CONFIDENCE, median_interval

__all__ = ["interleaved", "quartiles", "ratio_summary", "timed"]


def timed(fn: Callable[[], object]) -> float:
    """Return the wall time of one call of ``fn``, in seconds."""
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def interleaved(fns: Mapping[str, Callable[[], object]], repeats: int, warmup: int = 1, order: str = "rotate",
                seed: int = 0, start: int = 0) -> dict[str, list[float]]:
    """Time each callable once per round, in an order that changes every round.

    Args:
        fns (Mapping[str, Callable]): Name -> callable.
        repeats (int): Timed rounds.
        warmup (int): Untimed rounds first (each runs every callable once).
        order (str): ``"rotate"``: the order shifts by one per round, so each callable takes each position equally
            often; ``"shuffle"``: a seeded random order per round, so what follows a callable that frees large buffers
            varies too.
        seed (int): Seed of the ``"shuffle"`` order.
        start (int): Index of the first round, to continue a rotation across calls.

    Returns:
        (dict[str, list[float]]): Name -> seconds per round, in round order.
    """
    if order not in {"rotate", "shuffle"}:
        raise ValueError(f"interleaved: order must be 'rotate' or 'shuffle', got {order!r}")
    names = list(fns)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    rng = random.Random(seed)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(start, start + repeats):
        turn = names[r % len(names):] + names[: r % len(names)] if order == "rotate" else rng.sample(names, len(names))
        for name in turn:
            times[name].append(timed(fns[name]))
    return times


def quartiles(values: Sequence[float]) -> dict:
    """Return the median and the 25th/75th percentiles of ``values``."""
    q25, q50, q75 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return {"median": float(q50), "q25": float(q25), "q75": float(q75)}


def ratio_summary(times: Sequence[float], reference: Sequence[float], confidence: float = CONFIDENCE) -> dict:
    """Summarise per-round ratios ``times[i] / reference[i]``.

    Args:
        times (Sequence[float]): Per-round times of the measured callable.
        reference (Sequence[float]): Per-round times of the reference, same rounds.
        confidence (float): Coverage of the median's interval.

    Returns:
        (dict): ``median``, ``q25``, ``q75``, ``interval`` (order-statistics interval of the median, or None),
            ``coverage`` and ``per_round``.
    """
    if len(times) != len(reference):
        raise ValueError(f"ratio_summary: {len(times)} times but {len(reference)} reference times")
    ratios = [t / t0 for t, t0 in zip(times, reference)]
    mi = median_interval(ratios, confidence)
    return {**quartiles(ratios), "interval": mi["interval"],
            "coverage": mi["coverage"], "per_round": ratios}
