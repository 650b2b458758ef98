"""Reporting a bench result: the environment, one row per model with its paired comparison, Markdown, plot, files."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
from collections.abc import Sequence
from pathlib import Path

import torch

from .stats import CONFIDENCE, NO_DIFFERENCE, paired_difference

__all__ = ["environment", "format_markdown", "model_rows", "pairing", "plot_bench", "write_outputs"]

METRICS = {"map50": "mAP50", "map50_95": "mAP50-95"}


def _cpu_name() -> str:
    """Return the CPU model name from /proc/cpuinfo, else what ``platform`` knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def environment() -> dict:
    """Return the hardware and software the run used."""
    import torchvision
    import ultralytics

    from .. import __version__

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": _cpu_name(), "cpu_count": os.cpu_count(), "cpus_usable": usable,
            "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "python": platform.python_version(), "platform": platform.platform(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "ultralytics": ultralytics.__version__, "yolo_attn": __version__}


def _mean_std(values: Sequence[float]) -> dict:
    """Return the mean, the sample standard deviation (None for one value) and the values."""
    values = [float(v) for v in values]
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None,
            "values": values}


def model_rows(models: Sequence[str], static: dict, latency: dict, runs: dict) -> list[dict]:
    """Assemble one result row per model; every model after the first gets its paired comparison with the first.

    Args:
        models (Sequence[str]): Model YAMLs, the reference first.
        static (dict): Per model ``block``, ``params``, ``gflops``.
        latency (dict): Per latency name, as ``measure_latency`` returns it.
        runs (dict): Per model, its per-seed training runs.

    Returns:
        (list[dict]): Rows with ``latency_ms``, ``latency_ratio``, ``map50``, ``map50_95``, ``runs`` and
            ``vs_reference`` (per metric, ``paired_difference``; None for the reference).
    """
    ref = models[0]
    by_seed = {cfg: {r["seed"]: r for r in runs[cfg]} for cfg in models}
    rows = []
    for cfg in models:
        vs = None if cfg == ref else {
            k: paired_difference({s: r[k] for s, r in by_seed[ref].items()}, {s: r[k] for s, r in by_seed[cfg].items()})
            for k in METRICS
        }
        rows.append({"model": cfg, **static[cfg], "latency_ms": latency[cfg]["ms"],
                     "latency_ratio": latency[cfg]["ratio"], "map50": _mean_std([r["map50"] for r in runs[cfg]]),
                     "map50_95": _mean_std([r["map50_95"] for r in runs[cfg]]), "runs": runs[cfg],
                     "vs_reference": vs})
    return rows


def pairing(runs: dict) -> dict:
    """Check that the runs of each seed saw the same data order (the same training-loader seed).

    Args:
        runs (dict): Per model, its per-seed training runs (with ``data_seed``).

    Returns:
        (dict): ``data_seeds`` (seed -> the loader seeds of the models' runs) and ``same_data_order`` (True, False,
            or None when a loader seed could not be read).
    """
    seen: dict[int, list] = {}
    for model_runs in runs.values():
        for r in model_runs:
            seen.setdefault(r["seed"], []).append(r.get("data_seed"))
    values = [v for vs in seen.values() for v in vs]
    same = None if None in values else all(len(set(vs)) == 1 for vs in seen.values())
    return {"data_seeds": {str(k): v for k, v in seen.items()}, "same_data_order": same}


def _pm(stats: dict) -> str:
    """Format a mean ± std cell."""
    return f"{stats['mean']:.3f} ± {stats['std']:.3f}" if stats["std"] is not None else f"{stats['mean']:.3f}"


def _ratio_cell(ratio: dict) -> str:
    """Format a latency ratio with its interval, e.g. ``1.032 [1.021, 1.040]``."""
    lo_hi = ratio.get("interval")
    return f"{ratio['median']:.3f} " + (f"[{lo_hi[0]:.3f}, {lo_hi[1]:.3f}]" if lo_hi else "(too few rounds)")


def _diff_cell(d: dict | None) -> str:
    """Format a paired difference, e.g. ``+0.004 [-0.010, +0.018] no detectable difference``."""
    if d is None:
        return "reference"
    if d["interval"] is None:
        return f"{d['mean']:+.3f} (1 seed, no interval)"
    lo, hi = d["interval"]
    return f"{d['mean']:+.3f} [{lo:+.3f}, {hi:+.3f}]" + ("" if d["detectable"] else f" {NO_DIFFERENCE}")


def _header(result: dict) -> list[str]:
    """The lines above the table: when, where, how, and how to read it."""
    env, st, ref = result["environment"], result["settings"], result["settings"]["models"][0]
    n, lat = len(st["seeds"]), result["latency"]
    if lat["target"] is None:
        rounds = f"{lat['rounds']} (fixed)"
    elif lat["widest"] is not None and lat["widest"] <= lat["target"]:
        rounds = f"{lat['rounds']} (automatic: until every interval was within ±{lat['target']:g} of its median)"
    else:
        widest = "unknown" if lat["widest"] is None else f"±{lat['widest']:.3f}"
        rounds = (f"{lat['rounds']} (automatic, stopped at the cap before every interval was within "
                  f"±{lat['target']:g}: widest {widest}; the machine was noisy)")
    t = f" (t = {result['t_critical']:.3f} for {n - 1} degrees of freedom)" if result.get("t_critical") else ""
    same = {True: "checked: every model of a seed had the same loader seed",
            False: "WARNING: the loader seeds of one seed differ between models, so the pairing is not exact",
            None: "the loader seed could not be read"}[result["pairing"]["same_data_order"]]
    return [
        "# yolo-attn bench",
        "",
        f"- Date: {result['date']}; command: `{st['command']}`",
        f"- Hardware: {env['cpu']} ({env['cpus_usable']} usable of {env['cpu_count']} CPUs, "
        f"{env['torch_threads']} torch threads for latency); GPU: {env['gpu'] or 'none'}",
        f"- Software: Python {env['python']}, torch {env['torch']}, torchvision {env['torchvision']}, "
        f"Ultralytics {env['ultralytics']}, yolo-attn {env['yolo_attn']}",
        f"- Training ({st['preset']} preset): epochs {st['epochs']} per run, imgsz {st['imgsz']}, batch {st['batch']}, "
        f"device {st['device']}, seeds {', '.join(map(str, st['seeds']))}, data `{st['data']}`"
        + "".join(f", {k} {v}" for k, v in result["preset"]["train_args"].items()) + "; identical settings, "
        "`deterministic=True`. mAP of the final-epoch weights on the val split, mean ± sample std over seeds.",
        f"- Accuracy difference: model - {ref} in the same seed (runs of one seed see the same data order; {same}), "
        f"mean over {n} seeds with its {CONFIDENCE:.0%} t interval over seeds [low, high]{t}; "
        f"'{NO_DIFFERENCE}' when the interval contains 0.",
        f"- Latency: CPU, batch 1, {st['latency_imgsz']}x{st['latency_imgsz']}, fused eval models, "
        f"interleaved rounds: {rounds}; ratio = median over rounds of (model / {ref} in the same round) with the "
        f"{CONFIDENCE:.0%} order-statistics interval of that median [low, high]. The A/A row is a second copy of "
        f"{ref} timed in the same rounds: its distance from 1 is the noise floor of these ratios. Parameters and "
        f"GFLOPs at {st['latency_imgsz']}, {result['nc']} classes.",
        f"- Time: {result['timing']['total_s'] / 60:.1f} min in all ({result['timing']['train_s'] / 60:.1f} min "
        "training)" + (f"; budget {st['budget']:g} min" if st["budget"] else ""),
        "",
    ]


def format_markdown(result: dict) -> str:
    """Render a benchmark result (as returned by ``run_bench``) as a Markdown report with one table row per model.

    Args:
        result (dict): The result.

    Returns:
        (str): The Markdown text.
    """
    lines = _header(result) + [
        f"| model | block | params (M) | GFLOPs | latency (ms) | latency ratio [{CONFIDENCE:.0%} CI] | mAP50 "
        f"| mAP50-95 | ΔmAP50 [{CONFIDENCE:.0%} CI] | ΔmAP50-95 [{CONFIDENCE:.0%} CI] | per seed: mAP50 / mAP50-95 |",
        "|---|---|---:|---:|---:|---|---|---|---|---|---|",
    ]
    for i, row in enumerate(result["models"]):
        seeds = "; ".join(f"s{r['seed']} {r['map50']:.3f} / {r['map50_95']:.3f}" for r in row["runs"])
        vs = row["vs_reference"] or {}
        lines.append(
            f"| {row['model']} | {row['block']} | {row['params'] / 1e6:.3f} | {row['gflops']:.2f} "
            f"| {row['latency_ms']['median']:.1f} | {_ratio_cell(row['latency_ratio'])} | {_pm(row['map50'])} "
            f"| {_pm(row['map50_95'])} | {_diff_cell(vs.get('map50'))} | {_diff_cell(vs.get('map50_95'))} | {seeds} |"
        )
        if i == 0:
            aa = result["aa"]
            lines.append(f"| {aa['model']} | {row['block']} | {row['params'] / 1e6:.3f} | {row['gflops']:.2f} "
                         f"| {aa['latency_ms']['median']:.1f} | {_ratio_cell(aa['latency_ratio'])} | - | - "
                         "| latency noise floor | latency noise floor | - |")
    return "\n".join(lines) + "\n"


def plot_bench(result: dict, path: str | os.PathLike) -> Path:
    """Plot each model's mAP differences to the reference against its latency ratio, with both intervals.

    One panel per metric; the A/A copy's latency interval is shaded as the noise floor.

    Args:
        result (dict): A result as returned by ``run_bench``.
        path (str | os.PathLike): PNG file to write.

    Returns:
        (Path): The written file.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # no pyplot: the caller's backend and figures stay untouched

    st = result["settings"]
    ref = Path(st["models"][0]).stem
    fig = Figure(figsize=(10, 4.4), dpi=150)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharex=True)
    aa = result["aa"]["latency_ratio"].get("interval")
    for ax, (key, label) in zip(axes, METRICS.items()):
        ax.axhline(0.0, color="0.6", linewidth=1)
        ax.axvline(1.0, color="0.7", linestyle=":", linewidth=1)
        if aa:
            ax.axvspan(aa[0], aa[1], color="0.85", label="A/A latency interval (noise floor)")
        ax.plot([1.0], [0.0], "k*", markersize=9, label=f"{ref} (reference)")
        for row in result["models"][1:]:
            r, d = row["latency_ratio"], row["vs_reference"][key]
            x, y = r["median"], d["mean"]
            xerr = [[x - r["interval"][0]], [r["interval"][1] - x]] if r.get("interval") else None
            yerr = [[y - d["interval"][0]], [d["interval"][1] - y]] if d["interval"] else None
            ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="o", capsize=3, label=Path(row["model"]).stem)
            ax.annotate(Path(row["model"]).stem, (x, y), xytext=(5, 5), textcoords="offset points", fontsize=8)
        ax.set_xlabel(f"CPU latency ratio to {ref} at {st['latency_imgsz']} px (median, {CONFIDENCE:.0%} CI)",
                      fontsize=9)
        ax.set_ylabel(f"Δ{label} vs {ref} ({len(st['seeds'])} seeds, mean, {CONFIDENCE:.0%} t CI)", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle(f"{st['preset']} preset: epochs {st['epochs']}, imgsz {st['imgsz']}, {Path(st['data']).name}",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


def write_outputs(result: dict, out: Path) -> None:
    """Write bench.json, bench.md and bench.png to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "bench.md").write_text(format_markdown(result))
    plot_bench(result, out / "bench.png")
