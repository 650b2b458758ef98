"""Ablation benchmark: the stock detector and each attention variant, trained with identical settings and seeds.

What one run does, in order (``run_bench``; ``yolo-attn bench`` on the command line):

1. Builds every model for the dataset's classes and records its parameters and GFLOPs at ``latency_imgsz``.
2. Times batch-1 CPU forward passes of the fused, eval-mode models in interleaved rounds, together with a second,
   independent copy of the first model (the A/A row, the measurement's own noise floor). A model's latency ratio is
   the median over rounds of (its time / the first model's time in the same round), with the 95% order-statistics
   interval of that median.
3. With a time budget: trains each model for one epoch (a probe, then discarded) and picks the largest number of
   epochs whose estimated total fits the budget (see ``plan_epochs``).
4. Trains every model once per seed with the same arguments; runs of one seed see the same data order. mAP50 and
   mAP50-95 are those of the final-epoch weights on the val split (no checkpoint is picked by its val score).
5. Compares each model with the first seed by seed: the mean difference with its 95% t interval over seeds, and
   "no detectable difference" where that interval contains 0.
6. Writes ``bench.md`` (table and the run's hardware, versions and command), ``bench.json`` (the same plus every
   per-seed value, per-seed difference and per-round latency) and ``bench.png`` (the differences with their intervals
   against the latency ratio).

Every option is defined once in ``options.OPTIONS``; what the user leaves out comes from the preset of the training
device (``select_preset``: the CPU preset, or on CUDA a larger built-in dataset and batch). Latency is always
measured on the CPU. Layout: ``options`` (options, presets), ``timing`` (interleaved rounds, shared with the scripts
in ``benchmarks/``), ``stats`` (intervals), ``measure`` (latency, FLOPs, training), ``report`` (tables, plot).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .measure import (
    AA_SUFFIX,
    LATENCY_TARGET,
    MAX_EPOCHS,
    MIN_ROUNDS,
    count_gflops,
    estimate_train_s,
    measure_latency,
    plan_epochs,
    probe,
    profile_models,
    resolve_data,
    say,
    train_all,
    widest_interval,
)
from .options import (
    OPTIONS,
    PRESETS,
    SIGNATURE,
    BenchSettings,
    BenchSettingsError,
    Option,
    Preset,
    check_settings,
    default_models,
    select_preset,
    usage,
)
from .report import environment, format_markdown, model_rows, pairing, plot_bench, write_outputs
from .stats import median_interval, paired_difference, t_critical, t_interval

__all__ = [
    "OPTIONS",
    "PRESETS",
    "BenchSettings",
    "BenchSettingsError",
    "Option",
    "Preset",
    "check_settings",
    "count_gflops",
    "default_models",
    "estimate_train_s",
    "format_markdown",
    "measure_latency",
    "median_interval",
    "paired_difference",
    "plan_epochs",
    "plot_bench",
    "run_bench",
    "select_preset",
    "t_interval",
    "usage",
]


def run_bench(*args: Any, **kwargs: Any) -> dict:
    """Benchmark models against the first one: size, CPU latency ratio and paired mAP differences over seeds.

    The keywords are the options of ``OPTIONS`` (``yolo-attn bench help`` lists them with their defaults): models,
    seeds, epochs, budget, imgsz, batch, data, device, latency_imgsz, latency_repeats, out, verbose, command.

    Returns:
        (dict): The result written to ``bench.json``: ``date``, ``environment``, ``settings``, ``plan``, ``timing``,
            ``nc``, ``t_critical``, ``pairing``, ``aa`` (the A/A latency row) and ``models`` (one entry per model with
            ``params``, ``gflops``, ``latency_ms``, ``latency_ratio``, ``map50``, ``map50_95``, the per-seed ``runs``
            and ``vs_reference``, the paired differences to the first model).

    Raises:
        BenchSettingsError: An argument, model or dataset is invalid (checked before any training).
    """
    from ..integration import register

    s = check_settings(*args, **kwargs)
    register()  # idempotent; needed when YOLO_ATTN_AUTOREGISTER=0
    t0 = time.perf_counter()
    env = environment()
    say(f"yolo-attn bench: {len(s.models)} models x {len(s.seeds)} seeds, training on {s.device} ({s.preset} preset); "
        f"{env['cpu']}, {env['torch_threads']} torch threads")
    data_yaml, nc = resolve_data(s)
    rounds = s.latency_repeats or f"{MIN_ROUNDS}+ (until every interval is within ±{LATENCY_TARGET:g})"
    say(f"[latency] {rounds} interleaved rounds of batch-1 {s.latency_imgsz} px CPU passes, "
        f"{len(s.models)} models and an A/A copy of {s.models[0]}")
    static, latency = profile_models(s, nc)
    latency_s = time.perf_counter() - t0
    say(_latency_line(latency))
    plan = probe(s, data_yaml, latency_s) if s.budget else {"probes": None, "epochs": s.epochs}
    n_epochs = plan["epochs"]
    estimate = estimate_train_s(plan["probes"], len(s.seeds), n_epochs) if plan["probes"] else None
    plan["estimated_train_s"] = estimate
    probe_s = time.perf_counter() - t0 - latency_s
    say(f"[plan] {len(s.models) * len(s.seeds)} runs x {n_epochs} epochs, imgsz {s.imgsz}, batch {s.batch}, "
        f"data {data_yaml}" + (f"; about {estimate / 60:.1f} min of training" if estimate else ""))
    runs = train_all(s, data_yaml, n_epochs, estimate)
    total_s = time.perf_counter() - t0
    timing = {"latency_s": latency_s, "probe_s": probe_s, "train_s": total_s - latency_s - probe_s, "total_s": total_s}
    result = _result(s, env, data_yaml, nc, static, latency, plan, runs, timing)
    write_outputs(result, s.out)
    say(f"wrote {s.out / 'bench.md'}, bench.json and bench.png ({total_s / 60:.1f} min)")
    return result


def _latency_line(latency: dict) -> str:
    """Summarise the measured latency ratios (median and interval) in one progress line."""
    ref, *others = latency
    parts = []
    for name in others:
        r = latency[name]["ratio"]
        shown = "A/A" if name.endswith(AA_SUFFIX) else Path(name).stem
        interval = " [{:.3f}, {:.3f}]".format(*r["interval"]) if r["interval"] else ""
        parts.append(f"{shown} {r['median']:.3f}{interval}")
    n = len(latency[ref]["ms"]["per_round"])
    return f"[latency] ratio to {Path(ref).stem} over {n} rounds: " + ", ".join(parts)


def _result(s: BenchSettings, env: dict, data: str, nc: int, static: dict, latency: dict, plan: dict, runs: dict,
            timing: dict) -> dict:
    """Assemble the result that ``run_bench`` returns and writes to ``bench.json``."""
    aa = s.models[0] + AA_SUFFIX
    widest = widest_interval([v["ratio"] for v in list(latency.values())[1:]])
    settings = {**asdict(s), "out": str(s.out), "data": data, "epochs": plan["epochs"],
                "epochs_cap": (s.epochs or MAX_EPOCHS) if s.budget else None}
    return {
        "schema": 2,
        "date": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"),
        "environment": env,
        "settings": settings,
        "preset": asdict(PRESETS[s.preset]),
        "plan": plan,
        "timing": timing,
        "nc": nc,
        "t_critical": t_critical(len(s.seeds) - 1) if len(s.seeds) > 1 else None,
        "pairing": pairing(runs),
        "latency": {"rounds": len(latency[aa]["ms"]["per_round"]),
                    "target": None if s.latency_repeats else LATENCY_TARGET,
                    "widest": widest if math.isfinite(widest) else None},
        "aa": {"model": aa, "latency_ms": latency[aa]["ms"], "latency_ratio": latency[aa]["ratio"]},
        "models": model_rows(s.models, static, latency, runs),
    }


run_bench.__signature__ = SIGNATURE  # help() and IDEs show the options


def __getattr__(name: str) -> Any:
    """``DEFAULT_MODELS``: the default model list, read from the registry when asked (blocks may register late)."""
    if name == "DEFAULT_MODELS":
        return default_models()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
