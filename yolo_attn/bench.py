"""Ablation benchmark: the stock detector and each attention variant, trained with identical settings and seeds.

What one run does, in order (``run_bench``; ``yolo-attn bench`` on the command line):

1. Builds every model for the dataset's classes and records its parameters and GFLOPs at ``latency_imgsz``.
2. Times batch-1 CPU forward passes of the fused, eval-mode models, interleaved: each round runs every model once,
   in an order rotated per round, so load changes on the machine hit all models alike. The latency ratio of a model
   is the median over rounds of (its time / the first model's time in the same round), with the interquartile range
   of those per-round ratios as its spread; the first model (stock YOLOv8n by default) is exactly 1.
3. With a time budget: trains each model for one epoch (a probe, then discarded) and picks the largest number of
   epochs whose estimated total fits the budget (see ``plan_epochs``).
4. Trains every model once per seed with the same arguments (``seed=``, ``deterministic=True``, ``val=False``,
   ``plots=False``). mAP50 and mAP50-95 are those of the final-epoch weights on the dataset's val split (Ultralytics'
   final validation of ``best.pt``, which without per-epoch validation is the last epoch): no checkpoint is picked
   by its val score, so the val split is not used for selection.
5. Writes ``bench.md`` (table and the run's hardware, versions and command), ``bench.json`` (the same plus every
   per-seed value and per-round latency) and ``bench.png`` (mAP50-95 against latency ratio, one point per model).

GFLOPs are counted by ``torch.utils.flop_counter`` (convolutions and matrix products, 2 FLOPs per multiply-add)
plus torchvision's deformable convolution (used by DAS), which neither it nor Ultralytics' thop count counts by
itself. Element-wise work (activations, the gates' products, normalisations) is not counted, as usual.

On CUDA the defaults scale up: a larger built-in dataset (2048 train / 512 val images at 320 px), ``imgsz=320``
and ``batch=64``; with a budget the faster epochs buy more of them. Latency is always measured on the CPU.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

__all__ = [
    "DEFAULT_MODELS",
    "BenchSettings",
    "BenchSettingsError",
    "check_settings",
    "count_gflops",
    "format_markdown",
    "measure_latency",
    "plan_epochs",
    "plot_bench",
    "run_bench",
]

DEFAULT_MODELS = ("yolov8n.yaml", "yolov8n-nam.yaml", "yolov8n-simam.yaml", "yolov8n-se.yaml", "yolov8n-das.yaml")
DEFAULT_SEEDS = (0, 1)
DEFAULT_BUDGET = 30.0  # minutes, used when neither epochs nor budget is given
MAX_EPOCHS = 300  # cap on the epochs a budget may buy when no epochs= cap is given
BUDGET_SHARE = 0.97  # share of the remaining budget planned for training; the rest absorbs timing jitter
PROFILES = {  # defaults by device kind; on CUDA the built-in dataset is generated at the larger size
    "cpu": {"imgsz": 160, "batch": 16, "n_train": 256, "n_val": 64},
    "cuda": {"imgsz": 320, "batch": 64, "n_train": 2048, "n_val": 512},
}


class BenchSettingsError(ValueError):
    """A benchmark argument is invalid (raised before any training starts)."""


@dataclass(frozen=True)
class BenchSettings:
    """Validated benchmark settings.

    Attributes:
        models (tuple[str, ...]): Model YAMLs; the first is the latency reference.
        seeds (tuple[int, ...]): Training seeds, the same for every model.
        epochs (int | None): Epochs per run; with a budget, the most the budget may choose.
        budget (float | None): Minutes for the whole run, or None for a fixed ``epochs``.
        imgsz (int): Training and validation image size.
        batch (int): Training batch size.
        data (str | None): Data YAML; None for the built-in dataset sized for the device.
        device (str): Training device as Ultralytics takes it (``cpu``, ``0``, ...).
        latency_imgsz (int): Square input side for latency, parameters and GFLOPs.
        latency_repeats (int): Interleaved latency rounds.
        out (Path): Output directory.
        verbose (bool): Show Ultralytics' own training output.
        command (str): The command recorded in the report.
    """

    models: tuple[str, ...]
    seeds: tuple[int, ...]
    epochs: int | None
    budget: float | None
    imgsz: int
    batch: int
    data: str | None
    device: str
    latency_imgsz: int
    latency_repeats: int
    out: Path
    verbose: bool
    command: str


def _int(name: str, value: object, low: int, multiple: int = 1) -> int:
    """Return ``value`` as an int >= ``low`` (and a multiple of ``multiple``), else raise BenchSettingsError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low or value % multiple:
        extra = f" and a multiple of {multiple}" if multiple > 1 else ""
        raise BenchSettingsError(f"bench: {name} must be an integer >= {low}{extra}, got {value!r}")
    return int(value)


def _resolve_device(device: str | int | None) -> str:
    """Return the training device: ``None``/``"auto"`` picks the first CUDA GPU if there is one, else the CPU."""
    if device is None or str(device).strip().lower() in {"", "auto"}:
        return "0" if torch.cuda.is_available() else "cpu"
    return str(device).strip()


def _is_cuda(device: str) -> bool:
    """Return whether an Ultralytics device string names CUDA GPUs."""
    return device.lower() not in {"cpu", "mps"}


def _check_models(models: Sequence[str]) -> tuple[str, ...]:
    """Check the model list: YAML names, distinct file stems (they name the run directories)."""
    if isinstance(models, str) or not models:
        raise BenchSettingsError(f"bench: models must be a non-empty list of model YAMLs, got {models!r}")
    models = tuple(str(m) for m in models)
    for m in models:
        if not m.endswith((".yaml", ".yml")):
            raise BenchSettingsError(f"bench: model {m!r} is not a model YAML; give e.g. yolov8n-nam.yaml")
    stems = [Path(m).stem for m in models]
    if len(set(stems)) != len(stems):
        raise BenchSettingsError(f"bench: models must have distinct file names, got {list(models)}")
    return models


def _check_seeds(seeds: Sequence[int]) -> tuple[int, ...]:
    """Check the seeds: a non-empty list of distinct integers >= 0."""
    if isinstance(seeds, (str, int)) or not seeds:
        raise BenchSettingsError(f"bench: seeds must be a non-empty list of integers, e.g. (0, 1), got {seeds!r}")
    seeds = tuple(_int("each seed", s, 0) for s in seeds)
    if len(set(seeds)) != len(seeds):
        raise BenchSettingsError(f"bench: seeds must be distinct, got {list(seeds)}")
    return seeds


def _check_budget(budget: float | None, epochs: int | None) -> float | None:
    """Return the budget in minutes: the default when neither budget nor epochs is given, None for fixed epochs."""
    if budget is None:
        return DEFAULT_BUDGET if epochs is None else None
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not math.isfinite(budget) or budget <= 0:
        raise BenchSettingsError(f"bench: budget must be a number of minutes > 0, got {budget!r}")
    return float(budget)


def check_settings(
    models: Sequence[str] = DEFAULT_MODELS,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    epochs: int | None = None,
    budget: float | None = None,
    imgsz: int | None = None,
    batch: int | None = None,
    data: str | os.PathLike | None = None,
    device: str | int | None = None,
    latency_imgsz: int = 640,
    latency_repeats: int = 30,
    out: str | os.PathLike = "bench",
    verbose: bool = False,
    command: str | None = None,
) -> BenchSettings:
    """Validate the benchmark arguments and fill in the device-dependent defaults (see ``run_bench``).

    Returns:
        (BenchSettings): The settings.

    Raises:
        BenchSettingsError: An argument is invalid; the message names it and what is allowed.
    """
    models, seeds = _check_models(models), _check_seeds(seeds)
    epochs = None if epochs is None else _int("epochs", epochs, 1)
    budget = _check_budget(budget, epochs)
    device = _resolve_device(device)
    profile = PROFILES["cuda" if _is_cuda(device) else "cpu"]
    imgsz = profile["imgsz"] if imgsz is None else _int("imgsz", imgsz, 32)
    batch = profile["batch"] if batch is None else _int("batch", batch, 1)
    latency_imgsz = _int("latency_imgsz", latency_imgsz, 32, multiple=32)
    latency_repeats = _int("latency_repeats", latency_repeats, 1)
    if command is None:
        given = dict(models=list(models), seeds=list(seeds), epochs=epochs, budget=budget, imgsz=imgsz, batch=batch,
                     data=None if data is None else str(data), device=device, latency_imgsz=latency_imgsz,
                     latency_repeats=latency_repeats, out=str(out))
        command = "yolo_attn.run_bench(" + ", ".join(f"{k}={v!r}" for k, v in given.items()) + ")"
    return BenchSettings(models, seeds, epochs, budget, imgsz, batch, None if data is None else str(data), device,
                         latency_imgsz, latency_repeats, Path(out).expanduser().resolve(), bool(verbose), command)


# ---------------------------------------------------------------------------------------------------------- models


def _resolve_data(s: BenchSettings) -> tuple[str, int]:
    """Return the data YAML path and the number of classes, generating the built-in dataset when needed."""
    from ultralytics.data.utils import check_det_dataset

    from .data import default_data_dir, digits_yaml

    data = s.data
    if data is None:
        p = PROFILES["cuda" if _is_cuda(s.device) else "cpu"]
        root = default_data_dir() / ("digits" if p is PROFILES["cpu"] else f"digits-{p['n_train']}x{p['imgsz']}")
        data = str(digits_yaml(root, n_train=p["n_train"], n_val=p["n_val"], imgsz=p["imgsz"]))
    try:
        info = check_det_dataset(data)
    except Exception as e:  # Ultralytics raises several types for a missing or malformed dataset
        raise BenchSettingsError(f"bench: data={data!r} is not a usable detection dataset: {e}") from None
    return data, int(info["nc"])


def _build(cfg: str, nc: int) -> nn.Module:
    """Build a detection model from a YAML for ``nc`` classes, naming the YAML in any error."""
    from ultralytics.nn.tasks import DetectionModel

    try:
        return DetectionModel(cfg, nc=nc, verbose=False).eval()
    except Exception as e:  # a missing file, an unknown module, a malformed YAML
        raise BenchSettingsError(f"bench: model {cfg!r} could not be built ({type(e).__name__}: {e}); "
                                 "give a ready-made name (see `yolo-attn list`) or a model YAML path") from None


def _blocks_of(model: nn.Module) -> str:
    """Describe the attention blocks a model contains, e.g. ``"NAM x4"``, or ``"none"``."""
    from .registry import BLOCKS

    counts = {name: sum(isinstance(m, cls) for m in model.modules()) for name, cls in BLOCKS.items()}
    found = [f"{name} x{n}" for name, n in counts.items() if n]
    return ", ".join(found) or "none"


def _deform_conv_flops(x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of torchvision's ``deform_conv2d``: 2 per multiply-add, as for a regular convolution."""
    return 2 * math.prod(out_shape) * math.prod(w_shape[1:])


def count_gflops(model: nn.Module, imgsz: int = 640) -> float:
    """Count a model's GFLOPs for one ``imgsz`` x ``imgsz`` image (see the module docstring for what counts).

    Args:
        model (nn.Module): The model, on the CPU.
        imgsz (int): Square input side.

    Returns:
        (float): GFLOPs of one forward pass.
    """
    import torchvision  # noqa: F401  (registers torch.ops.torchvision)

    try:
        from torch.utils.flop_counter import FlopCounterMode

        mapping = {torch.ops.torchvision.deform_conv2d: _deform_conv_flops}
        counter = FlopCounterMode(display=False, custom_mapping=mapping)
    except (ImportError, TypeError):  # torch < 2.1: Ultralytics' thop count, without the deformable convolution
        from ultralytics.utils.torch_utils import get_flops

        return get_flops(model, imgsz)
    with counter, torch.no_grad():
        model(torch.zeros(1, 3, imgsz, imgsz))
    return counter.get_total_flops() / 1e9


def _quartiles(values: Sequence[float]) -> dict:
    """Return the median and the 25th/75th percentiles of ``values``."""
    q25, q50, q75 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return {"median": float(q50), "q25": float(q25), "q75": float(q75)}


def measure_latency(models: dict[str, nn.Module], imgsz: int = 640, repeats: int = 30, warmup: int = 2) -> dict:
    """Time batch-1 CPU forward passes of several models in interleaved rounds.

    Args:
        models (dict[str, nn.Module]): Name -> model (eval mode, on the CPU); the first is the reference.
        imgsz (int): Square input side.
        repeats (int): Rounds; each runs every model once, the order rotated by one model per round.
        warmup (int): Untimed passes per model before the first round.

    Returns:
        (dict): Per name: ``ms`` and ``ratio`` (median, q25, q75) and the raw ``ms_per_round`` and
            ``ratio_per_round`` (time / the reference's time in the same round), in round order.
    """
    names = list(models)
    x = torch.rand(1, 3, imgsz, imgsz, generator=torch.Generator().manual_seed(0))
    times: dict[str, list[float]] = {n: [] for n in names}
    with torch.inference_mode():
        for name in names:
            for _ in range(warmup):
                models[name](x)
        for r in range(repeats):
            for name in names[r % len(names):] + names[: r % len(names)]:
                t = time.perf_counter()
                models[name](x)
                times[name].append((time.perf_counter() - t) * 1e3)
    ref = times[names[0]]
    out = {}
    for name in names:
        ratios = [t / t0 for t, t0 in zip(times[name], ref)]
        out[name] = {"ms": _quartiles(times[name]), "ratio": _quartiles(ratios), "ms_per_round": times[name],
                     "ratio_per_round": ratios}
    return out


def _profile_models(s: BenchSettings, nc: int) -> tuple[dict, dict]:
    """Build every model, record blocks, parameters and GFLOPs, then measure the interleaved CPU latency."""
    static, fused = {}, {}
    for cfg in s.models:
        with _quiet(s.verbose):  # Ultralytics announces the nc override of every build
            model = _build(cfg, nc)
        static[cfg] = {"block": _blocks_of(model), "params": sum(p.numel() for p in model.parameters()),
                       "gflops": count_gflops(model, s.latency_imgsz)}
        fused[cfg] = model.fuse(verbose=False).eval()
    return static, measure_latency(fused, s.latency_imgsz, s.latency_repeats)


# -------------------------------------------------------------------------------------------------------- training


def _say(message: str) -> None:
    """Print one progress line at once (the run is long; buffering would hide where it is)."""
    print(message, flush=True)


@contextlib.contextmanager
def _quiet(verbose: bool) -> Iterator[None]:
    """Hide Ultralytics' info lines and progress bars (its bars follow its logger's level) unless ``verbose``."""
    logger = logging.getLogger("ultralytics")
    level = logger.level
    if not verbose:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _keep_determinism_flag() -> Iterator[None]:
    """Restore torch's deterministic-algorithms switch, which ``deterministic=True`` training leaves on."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def _train(cfg: str, seed: int, epochs: int, data: str, s: BenchSettings, run_dir: Path,
           on_epoch: Callable[[int, int], None] | None = None) -> dict:
    """Train one model for one seed and return its final-epoch mAPs and timings.

    Args:
        cfg (str): Model YAML.
        seed (int): Training seed.
        epochs (int): Epochs.
        data (str): Data YAML.
        s (BenchSettings): The shared settings.
        run_dir (Path): Ultralytics run directory (replaced if it exists).
        on_epoch (Callable, optional): Called with (epoch, epochs) after each training epoch.

    Returns:
        (dict): ``seed``, ``map50``, ``map50_95``, ``train_s`` (wall time of the whole call) and ``epoch_s``
            (median time of a training epoch, without validation).
    """
    from ultralytics import YOLO

    starts, epoch_s = [], []

    def epoch_start(trainer) -> None:
        starts.append(time.perf_counter())

    def epoch_end(trainer) -> None:
        epoch_s.append(time.perf_counter() - starts[-1])
        if on_epoch:
            on_epoch(trainer.epoch + 1, trainer.epochs)

    t = time.perf_counter()
    with _quiet(s.verbose), _keep_determinism_flag():
        model = YOLO(cfg)
        model.add_callback("on_train_epoch_start", epoch_start)
        model.add_callback("on_train_epoch_end", epoch_end)
        metrics = model.train(data=data, epochs=epochs, imgsz=s.imgsz, batch=s.batch, device=s.device, seed=seed,
                              deterministic=True, val=False, plots=False, project=str(run_dir.parent),
                              name=run_dir.name, exist_ok=True, verbose=s.verbose)
    if metrics is None:
        raise RuntimeError(f"bench: training {cfg} (seed {seed}) returned no metrics; see {run_dir}")
    return {"seed": seed, "map50": float(metrics.box.map50), "map50_95": float(metrics.box.map),
            "train_s": time.perf_counter() - t, "epoch_s": statistics.median(epoch_s), "dir": str(run_dir)}


def plan_epochs(probes: dict[str, dict], n_seeds: int, available_s: float, max_epochs: int) -> int:
    """Return the most epochs per run whose estimated training time fits ``available_s`` (at least 1).

    A run of N epochs is estimated as its model's one-epoch probe (setup, one epoch, the final validations) plus
    N - 1 further epochs of the probe's epoch time; every model runs once per seed.

    Args:
        probes (dict[str, dict]): Per model, ``train_s`` (probe wall time) and ``epoch_s`` (one training epoch).
        n_seeds (int): Runs per model.
        available_s (float): Seconds available for all training runs.
        max_epochs (int): Upper limit.

    Returns:
        (int): Epochs per run, in [1, max_epochs].
    """
    fixed = n_seeds * sum(p["train_s"] - p["epoch_s"] for p in probes.values())
    per_epoch = n_seeds * sum(p["epoch_s"] for p in probes.values())
    if per_epoch <= 0:
        return max_epochs
    return max(1, min(max_epochs, int((available_s - fixed) // per_epoch)))


def estimate_train_s(probes: dict[str, dict], n_seeds: int, epochs: int) -> float:
    """Return the estimated seconds of all training runs at ``epochs`` epochs (the model of ``plan_epochs``)."""
    return n_seeds * sum(p["train_s"] + (epochs - 1) * p["epoch_s"] for p in probes.values())


def _probe(s: BenchSettings, data: str, elapsed_s: float) -> dict:
    """Train each model one epoch, then choose the epochs that fit the budget; return the plan."""
    _say(f"[probe] one epoch per model to fit the {s.budget:g} min budget")
    probes = {}
    for i, cfg in enumerate(s.models, 1):
        _say(f"[probe {i}/{len(s.models)}] {cfg}: 1 epoch")
        run = _train(cfg, s.seeds[0], 1, data, s, s.out / "runs" / f"probe-{Path(cfg).stem}")
        probes[cfg] = {"train_s": run["train_s"], "epoch_s": run["epoch_s"]}
        shutil.rmtree(run["dir"], ignore_errors=True)  # a timing probe, not a result
    spent = elapsed_s + sum(p["train_s"] for p in probes.values())
    available = (s.budget * 60 - spent) * BUDGET_SHARE
    epochs = plan_epochs(probes, len(s.seeds), available, s.epochs or MAX_EPOCHS)
    if epochs == 1 and estimate_train_s(probes, len(s.seeds), 1) > available:
        _say(f"[plan] warning: even 1 epoch per run needs more than the {s.budget:g} min budget; running 1 epoch")
    return {"probes": probes, "epochs": epochs, "available_s": available}


def _train_all(s: BenchSettings, data: str, epochs: int, estimate_s: float | None) -> dict[str, list[dict]]:
    """Train every model for every seed (seeds in the outer loop, so a stopped run has comparable results)."""
    runs: dict[str, list[dict]] = {cfg: [] for cfg in s.models}
    jobs = [(seed, cfg) for seed in s.seeds for cfg in s.models]
    tty = sys.stdout.isatty()
    t0 = time.perf_counter()
    for k, (seed, cfg) in enumerate(jobs, 1):
        tag = f"[{k}/{len(jobs)}] {cfg} seed {seed}"
        done = time.perf_counter() - t0
        left = (estimate_s - done) if estimate_s else (done / (k - 1) * (len(jobs) - k + 1) if k > 1 else None)
        eta = f", about {max(left, 0) / 60:.1f} min of training left" if left is not None else ""
        _say(f"{tag}: training, {epochs} epoch{'s' * (epochs > 1)}{eta}")

        def on_epoch(e: int, n: int, tag: str = tag) -> None:
            if tty:  # redraw one line in a terminal; in a log file the start/end lines suffice
                print(f"\r{tag}: epoch {e}/{n}", end="" if e < n else "\n", flush=True)

        run = _train(cfg, seed, epochs, data, s, s.out / "runs" / f"{Path(cfg).stem}-seed{seed}", on_epoch)
        runs[cfg].append(run)
        _say(f"{tag}: mAP50 {run['map50']:.4f}, mAP50-95 {run['map50_95']:.4f} ({run['train_s']:.0f} s)")
    return runs


# --------------------------------------------------------------------------------------------------------- results


def _cpu_name() -> str:
    """Return the CPU model name from /proc/cpuinfo, else what ``platform`` knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def _environment() -> dict:
    """Return the hardware and software the run used."""
    import torchvision
    import ultralytics

    from . import __version__

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


def _model_rows(s: BenchSettings, static: dict, latency: dict, runs: dict) -> list[dict]:
    """Assemble one result row per model."""
    rows = []
    for cfg in s.models:
        lat = latency[cfg]
        rows.append({"model": cfg, **static[cfg], "latency_ms": {**lat["ms"], "per_round": lat["ms_per_round"]},
                     "latency_ratio": {**lat["ratio"], "per_round": lat["ratio_per_round"]},
                     "map50": _mean_std([r["map50"] for r in runs[cfg]]),
                     "map50_95": _mean_std([r["map50_95"] for r in runs[cfg]]), "runs": runs[cfg]})
    return rows


def _pm(stats: dict) -> str:
    """Format a mean ± std cell."""
    return f"{stats['mean']:.3f} ± {stats['std']:.3f}" if stats["std"] is not None else f"{stats['mean']:.3f}"


def format_markdown(result: dict) -> str:
    """Render a benchmark result (as returned by ``run_bench``) as a Markdown report with one table row per model.

    Args:
        result (dict): The result.

    Returns:
        (str): The Markdown text.
    """
    env, st = result["environment"], result["settings"]
    gpu = env["gpu"] or "none"
    lines = [
        "# yolo-attn bench",
        "",
        f"- Date: {result['date']}; command: `{st['command']}`",
        f"- Hardware: {env['cpu']} ({env['cpus_usable']} usable of {env['cpu_count']} CPUs, "
        f"{env['torch_threads']} torch threads for latency); GPU: {gpu}",
        f"- Software: Python {env['python']}, torch {env['torch']}, torchvision {env['torchvision']}, "
        f"Ultralytics {env['ultralytics']}, yolo-attn {env['yolo_attn']}",
        f"- Training: epochs {st['epochs']} per run, imgsz {st['imgsz']}, batch {st['batch']}, device "
        f"{st['device']}, seeds {', '.join(map(str, st['seeds']))}, data `{st['data']}`; identical settings, "
        "`deterministic=True`. mAP of the final-epoch weights on the val split, mean ± sample std over seeds.",
        f"- Latency: CPU, batch 1, {st['latency_imgsz']}x{st['latency_imgsz']}, fused eval models, "
        f"{st['latency_repeats']} interleaved rounds; ratio = median over rounds of (model / {st['models'][0]} in the "
        f"same round) [interquartile range]. Parameters and GFLOPs at {st['latency_imgsz']}, "
        f"{result['nc']} classes.",
        f"- Time: {result['timing']['total_s'] / 60:.1f} min in all ({result['timing']['train_s'] / 60:.1f} min "
        "training)" + (f"; budget {st['budget']:g} min" if st["budget"] else ""),
        "",
        "| model | block | params (M) | GFLOPs | latency (ms) | latency ratio | mAP50 | mAP50-95 "
        "| per seed: mAP50 / mAP50-95 |",
        "|---|---|---:|---:|---:|---|---|---|---|",
    ]
    for row in result["models"]:
        ratio = row["latency_ratio"]
        seeds = "; ".join(f"s{r['seed']} {r['map50']:.3f} / {r['map50_95']:.3f}" for r in row["runs"])
        lines.append(
            f"| {row['model']} | {row['block']} | {row['params'] / 1e6:.3f} | {row['gflops']:.2f} "
            f"| {row['latency_ms']['median']:.1f} | {ratio['median']:.3f} [{ratio['q25']:.3f}, {ratio['q75']:.3f}] "
            f"| {_pm(row['map50'])} | {_pm(row['map50_95'])} | {seeds} |"
        )
    return "\n".join(lines) + "\n"


def plot_bench(result: dict, path: str | os.PathLike) -> Path:
    """Plot mAP50-95 against the latency ratio, one labelled point per model with its spreads as error bars.

    Args:
        result (dict): A result as returned by ``run_bench``.
        path (str | os.PathLike): PNG file to write.

    Returns:
        (Path): The written file.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # no pyplot: the caller's backend and figures stay untouched

    fig = Figure(figsize=(6.4, 4.4), dpi=150)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.axvline(1.0, color="0.7", linestyle=":", linewidth=1)
    for row in result["models"]:
        r, m = row["latency_ratio"], row["map50_95"]
        xerr = [[r["median"] - r["q25"]], [r["q75"] - r["median"]]]
        ax.errorbar(r["median"], m["mean"], xerr=xerr, yerr=m["std"] or 0.0, fmt="o", capsize=3)
        ax.annotate(Path(row["model"]).stem, (r["median"], m["mean"]), xytext=(5, 5), textcoords="offset points",
                    fontsize=8)
    st = result["settings"]
    ax.set_xlabel(f"CPU latency ratio to {Path(st['models'][0]).stem} at {st['latency_imgsz']} px (median, IQR)")
    ax.set_ylabel(f"mAP50-95 (mean ± std, {len(st['seeds'])} seeds)")
    ax.set_title(f"epochs {st['epochs']}, imgsz {st['imgsz']}, {Path(st['data']).name}", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


def _write_outputs(result: dict, out: Path) -> None:
    """Write bench.json, bench.md and bench.png to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "bench.md").write_text(format_markdown(result))
    plot_bench(result, out / "bench.png")


def run_bench(
    models: Sequence[str] = DEFAULT_MODELS,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    epochs: int | None = None,
    budget: float | None = None,
    imgsz: int | None = None,
    batch: int | None = None,
    data: str | os.PathLike | None = None,
    device: str | int | None = None,
    latency_imgsz: int = 640,
    latency_repeats: int = 30,
    out: str | os.PathLike = "bench",
    verbose: bool = False,
    command: str | None = None,
) -> dict:
    """Benchmark models against the first one: size, CPU latency ratio and mAP over seeds (module docstring).

    Args:
        models (Sequence[str]): Model YAMLs; the first is the reference for latency ratios (stock YOLOv8n).
        seeds (Sequence[int]): Training seeds, the same for every model (at least 2 for a spread).
        epochs (int, optional): Epochs per run. With a budget, the most the budget may choose (default 300).
        budget (float, optional): Minutes for the whole run; epochs are chosen to fit it after a one-epoch probe of
            each model. Defaults to 30 when ``epochs`` is not given either.
        imgsz (int, optional): Training image size; default 160 on the CPU, 320 on CUDA.
        batch (int, optional): Training batch size; default 16 on the CPU, 64 on CUDA.
        data (str | os.PathLike, optional): Data YAML; default the built-in digits dataset (larger on CUDA).
        device (str | int, optional): Training device; None or ``"auto"``: the first CUDA GPU, else the CPU.
        latency_imgsz (int): Input side for latency, parameters and GFLOPs (a multiple of 32).
        latency_repeats (int): Interleaved latency rounds.
        out (str | os.PathLike): Directory for bench.md/json/png (replaced) and the training runs (``runs/``).
        verbose (bool): Show Ultralytics' per-epoch training output.
        command (str, optional): Command line recorded in the report; default: this call.

    Returns:
        (dict): The result written to ``bench.json``: ``date``, ``environment``, ``settings``, ``plan``,
            ``timing``, ``nc`` and ``models`` (one entry per model with ``params``, ``gflops``, ``latency_ms``,
            ``latency_ratio``, ``map50``, ``map50_95`` and the per-seed ``runs``).

    Raises:
        BenchSettingsError: An argument, model or dataset is invalid (checked before any training).
    """
    from .integration import register

    s = check_settings(models, seeds, epochs, budget, imgsz, batch, data, device, latency_imgsz, latency_repeats,
                       out, verbose, command)
    register()  # idempotent; needed when YOLO_ATTN_AUTOREGISTER=0
    t0 = time.perf_counter()
    env = _environment()
    _say(f"yolo-attn bench: {len(s.models)} models x {len(s.seeds)} seeds, training on {s.device}; {env['cpu']}, "
         f"{env['torch_threads']} torch threads")
    data_yaml, nc = _resolve_data(s)
    _say(f"[latency] {s.latency_repeats} interleaved rounds of batch-1 {s.latency_imgsz} px CPU passes, "
         f"{len(s.models)} models")
    static, latency = _profile_models(s, nc)
    latency_s = time.perf_counter() - t0
    plan = _probe(s, data_yaml, latency_s) if s.budget else {"probes": None, "epochs": s.epochs}
    n_epochs = plan["epochs"]
    estimate = estimate_train_s(plan["probes"], len(s.seeds), n_epochs) if plan["probes"] else None
    plan["estimated_train_s"] = estimate
    probe_s = time.perf_counter() - t0 - latency_s
    _say(f"[plan] {len(s.models) * len(s.seeds)} runs x {n_epochs} epochs, imgsz {s.imgsz}, batch {s.batch}, "
         f"data {data_yaml}" + (f"; about {estimate / 60:.1f} min of training" if estimate else ""))
    runs = _train_all(s, data_yaml, n_epochs, estimate)
    total_s = time.perf_counter() - t0
    settings = {**asdict(s), "out": str(s.out), "data": data_yaml, "epochs": n_epochs,
                "epochs_cap": (s.epochs or MAX_EPOCHS) if s.budget else None}
    result = {
        "schema": 1,
        "date": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"),
        "environment": env,
        "settings": settings,
        "plan": plan,
        "timing": {"latency_s": latency_s, "probe_s": probe_s, "train_s": total_s - latency_s - probe_s,
                   "total_s": total_s},
        "nc": nc,
        "models": _model_rows(s, static, latency, runs),
    }
    _write_outputs(result, s.out)
    _say(f"wrote {s.out / 'bench.md'}, bench.json and bench.png ({total_s / 60:.1f} min)")
    return result
