"""What the bench measures: model size and GFLOPs, interleaved CPU latency with an A/A copy, and the training runs.

Latency: batch-1 CPU forward passes of the fused, eval-mode models, interleaved (each round runs every model once, in
an order rotated per round). Besides the models, a second, independently built and fused copy of the first model
runs in the same rounds: its ratio to the first is 1 by construction, so how far its interval strays from 1 is the
measurement's own noise floor, printed as the A/A row.

Training: every model once per seed with the same arguments (``seed=``, ``deterministic=True``, ``val=False``,
``plots=False``); mAP50 and mAP50-95 of the final-epoch weights on the val split. Ultralytics seeds the training
loader's shuffle (and its workers' augmentation) from the training seed, so runs of one seed see the same data in the
same order; each run records that loader seed (``data_seed``) so the pairing can be checked.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
import torch.nn as nn

from .options import BenchSettings, BenchSettingsError, PRESETS, Preset
from .timing import interleaved, quartiles, ratio_summary

__all__ = [
    "AA_SUFFIX",
    "LATENCY_TARGET",
    "MAX_EPOCHS",
    "count_gflops",
    "estimate_train_s",
    "measure_latency",
    "plan_epochs",
    "preset_data",
    "probe",
    "profile_models",
    "resolve_data",
    "say",
    "train_all",
    "widest_interval",
]

MAX_EPOCHS = 300  # cap on the epochs a budget may buy when no epochs= cap is given
BUDGET_SHARE = 0.97  # share of the remaining budget planned for training; the rest absorbs timing jitter
AA_SUFFIX = " (A/A copy)"  # latency name of the first model's second copy
# Automatic latency rounds: at least MIN_ROUNDS, then blocks of about ROUND_BLOCK until every ratio's 95% interval is
# within LATENCY_TARGET of its median, a third of the tightest latency goal margin (at most 1.03x stock)
LATENCY_TARGET = 0.01
MIN_ROUNDS, ROUND_BLOCK, MAX_ROUNDS = 50, 25, 400


def say(message: str) -> None:
    """Print one progress line at once (the run is long; buffering would hide where it is)."""
    print(message, flush=True)


# ---------------------------------------------------------------------------------------------------------- data


def preset_data(preset: Preset) -> str:
    """Return the data YAML of a preset's built-in dataset, generating it on first use.

    Args:
        preset (Preset): The preset.

    Returns:
        (str): Path of the data YAML.
    """
    from ..data import preset_yaml

    return str(preset_yaml(preset.name))


def resolve_data(s: BenchSettings) -> tuple[str, int]:
    """Return the data YAML path and the number of classes, generating the preset's dataset when none is given."""
    from ultralytics.data.utils import check_det_dataset

    data = s.data if s.data is not None else preset_data(PRESETS[s.preset])
    try:
        info = check_det_dataset(data)
    except Exception as e:  # Ultralytics raises several types for a missing or malformed dataset
        raise BenchSettingsError(f"bench: data={data!r} is not a usable detection dataset: {e}") from None
    return data, int(info["nc"])


# ---------------------------------------------------------------------------------------------------------- models


def _build(cfg: str, nc: int) -> nn.Module:
    """Build a detection model from a YAML for ``nc`` classes, naming the YAML in any error."""
    from ultralytics.nn.tasks import DetectionModel

    try:
        return DetectionModel(cfg, nc=nc, verbose=False).eval()
    except Exception as e:  # a missing file, an unknown module, a malformed YAML
        raise BenchSettingsError(f"bench: model {cfg!r} could not be built ({type(e).__name__}: {e}); "
                                 "give a ready-made name (see `yolo-attn list`) or a model YAML path") from None


def _blocks_of(model: nn.Module) -> str:
    """Describe the attention blocks a model contains, e.g. ``"<block name> x4"``, or ``"none"``."""
    from ..registry import BLOCKS

    counts = {name: sum(isinstance(m, cls) for m in model.modules()) for name, cls in BLOCKS.items()}
    found = [f"{name} x{n}" for name, n in counts.items() if n]
    return ", ".join(found) or "none"


def _deform_conv_flops(x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of torchvision's ``deform_conv2d``: 2 per multiply-add, as for a regular convolution."""
    return 2 * math.prod(out_shape) * math.prod(w_shape[1:])


def count_gflops(model: nn.Module, imgsz: int = 640) -> float:
    """Count a model's GFLOPs for one ``imgsz`` x ``imgsz`` image.

    Convolutions and matrix products by ``torch.utils.flop_counter`` (2 FLOPs per multiply-add) plus torchvision's
    deformable convolution, which neither it nor Ultralytics' thop count counts by itself. Element-wise work
    (activations, the gates' products, normalisations) is not counted, as usual.

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


def widest_interval(ratios: Sequence[dict]) -> float:
    """Return the largest distance from a ratio's median to an end of its interval (inf when one has no interval).

    Args:
        ratios (Sequence[dict]): Ratio summaries (``ratio_summary``) of the models compared with the reference.

    Returns:
        (float): The widest half-width; 0 for no ratios.
    """
    widths = [max(r["median"] - r["interval"][0], r["interval"][1] - r["median"]) if r["interval"] else math.inf
              for r in ratios]
    return max(widths, default=0.0)


def measure_latency(models: dict[str, nn.Module], imgsz: int = 640, repeats: int | None = None, warmup: int = 2,
                    target: float = LATENCY_TARGET) -> dict:
    """Time batch-1 CPU forward passes of several models in interleaved rounds.

    Args:
        models (dict[str, nn.Module]): Name -> model (eval mode, on the CPU); the first is the reference.
        imgsz (int): Square input side.
        repeats (int, optional): Rounds; each runs every model once, the order rotated by one model per round. None:
            at least ``MIN_ROUNDS``, then more until every ratio's 95% interval lies within ``target`` of its median
            (or ``MAX_ROUNDS`` are done).
        warmup (int): Untimed passes per model before the first round.
        target (float): Interval half-width that ends an automatic measurement.

    Returns:
        (dict): Per name: ``ms`` (median, q25, q75, ``per_round``) and ``ratio`` (median, q25, q75, the median's
            95% ``interval`` and its ``coverage``, ``per_round``: time / the reference's time in the same round).
    """
    x = torch.rand(1, 3, imgsz, imgsz, generator=torch.Generator().manual_seed(0))
    fns = {n: (lambda m=m: m(x)) for n, m in models.items()}
    step = len(fns) * math.ceil(ROUND_BLOCK / len(fns))  # whole rotations, so every model takes every position
    with torch.inference_mode():
        times = interleaved(fns, repeats or step * math.ceil(MIN_ROUNDS / step), warmup=warmup)
        while repeats is None and len(times[next(iter(fns))]) < MAX_ROUNDS and widest_interval(
            [ratio_summary(t, times[next(iter(fns))]) for t in list(times.values())[1:]]
        ) > target:
            more = interleaved(fns, step, warmup=0, start=len(times[next(iter(fns))]))
            times = {n: times[n] + more[n] for n in fns}
    ref = times[next(iter(models))]
    ms = {n: [t * 1e3 for t in v] for n, v in times.items()}
    return {n: {"ms": {**quartiles(ms[n]), "per_round": ms[n]}, "ratio": ratio_summary(t, ref)}
            for n, t in times.items()}


def profile_models(s: BenchSettings, nc: int) -> tuple[dict, dict]:
    """Build every model, record blocks, parameters and GFLOPs, then measure the interleaved CPU latency.

    Returns:
        (tuple[dict, dict]): Per model its ``block``, ``params`` and ``gflops``; the latency of every model and of
            the first model's A/A copy (named ``models[0] + AA_SUFFIX``), as ``measure_latency`` returns it.
    """
    static, built = {}, {}
    for cfg in s.models:
        with quiet(s.verbose):  # Ultralytics announces the nc override of every build
            built[cfg] = _build(cfg, nc)
        static[cfg] = {"block": _blocks_of(built[cfg]), "params": sum(p.numel() for p in built[cfg].parameters()),
                       "gflops": count_gflops(built[cfg], s.latency_imgsz)}
    first = s.models[0]
    aa = {first + AA_SUFFIX: copy.deepcopy(built[first])}  # same weights, its own memory, fused on its own
    order = {first: built[first], **aa, **{k: m for k, m in built.items() if k != first}}  # the reference first
    fused = {k: m.fuse(verbose=False).eval() for k, m in order.items()}
    return static, measure_latency(fused, s.latency_imgsz, s.latency_repeats)


# -------------------------------------------------------------------------------------------------------- training


@contextlib.contextmanager
def quiet(verbose: bool) -> Iterator[None]:
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
        (dict): ``seed``, ``map50``, ``map50_95``, ``train_s`` (wall time of the whole call), ``epoch_s`` (median
            time of a training epoch, without validation), ``data_seed`` (the training loader's shuffle seed, None if
            unknown) and ``dir``.
    """
    from ultralytics import YOLO

    starts, epoch_s, data_seed = [], [], []

    def train_start(trainer) -> None:
        generator = getattr(getattr(trainer, "train_loader", None), "generator", None)
        data_seed.append(generator.initial_seed() if generator is not None else None)

    def epoch_start(trainer) -> None:
        starts.append(time.perf_counter())

    def epoch_end(trainer) -> None:
        epoch_s.append(time.perf_counter() - starts[-1])
        if on_epoch:
            on_epoch(trainer.epoch + 1, trainer.epochs)

    t = time.perf_counter()
    with quiet(s.verbose), _keep_determinism_flag():
        model = YOLO(cfg)
        model.add_callback("on_train_start", train_start)
        model.add_callback("on_train_epoch_start", epoch_start)
        model.add_callback("on_train_epoch_end", epoch_end)
        metrics = model.train(data=data, epochs=epochs, imgsz=s.imgsz, batch=s.batch, device=s.device, seed=seed,
                              deterministic=True, val=False, plots=False, project=str(run_dir.parent),
                              name=run_dir.name, exist_ok=True, verbose=s.verbose, **PRESETS[s.preset].train_args)
    if metrics is None:
        raise RuntimeError(f"bench: training {cfg} (seed {seed}) returned no metrics; see {run_dir}")
    return {"seed": seed, "map50": float(metrics.box.map50), "map50_95": float(metrics.box.map),
            "train_s": time.perf_counter() - t, "epoch_s": statistics.median(epoch_s),
            "data_seed": data_seed[0] if data_seed else None, "dir": str(run_dir)}


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


def probe(s: BenchSettings, data: str, elapsed_s: float) -> dict:
    """Train each model one epoch, then choose the epochs that fit the budget; return the plan."""
    say(f"[probe] one epoch per model to fit the {s.budget:g} min budget")
    probes = {}
    for i, cfg in enumerate(s.models, 1):
        say(f"[probe {i}/{len(s.models)}] {cfg}: 1 epoch")
        run = _train(cfg, s.seeds[0], 1, data, s, s.out / "runs" / f"probe-{Path(cfg).stem}")
        probes[cfg] = {"train_s": run["train_s"], "epoch_s": run["epoch_s"]}
        shutil.rmtree(run["dir"], ignore_errors=True)  # a timing probe, not a result
    spent = elapsed_s + sum(p["train_s"] for p in probes.values())
    available = (s.budget * 60 - spent) * BUDGET_SHARE
    epochs = plan_epochs(probes, len(s.seeds), available, s.epochs or MAX_EPOCHS)
    if epochs == 1 and estimate_train_s(probes, len(s.seeds), 1) > available:
        say(f"[plan] warning: even 1 epoch per run needs more than the {s.budget:g} min budget; running 1 epoch")
    return {"probes": probes, "epochs": epochs, "available_s": available}


def train_all(s: BenchSettings, data: str, epochs: int, estimate_s: float | None) -> dict[str, list[dict]]:
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
        say(f"{tag}: training, {epochs} epoch{'s' * (epochs > 1)}{eta}")

        def on_epoch(e: int, n: int, tag: str = tag) -> None:
            if tty:  # redraw one line in a terminal; in a log file the start/end lines suffice
                print(f"\r{tag}: epoch {e}/{n}", end="" if e < n else "\n", flush=True)

        run = _train(cfg, seed, epochs, data, s, s.out / "runs" / f"{Path(cfg).stem}-seed{seed}", on_epoch)
        runs[cfg].append(run)
        say(f"{tag}: mAP50 {run['map50']:.4f}, mAP50-95 {run['map50_95']:.4f} ({run['train_s']:.0f} s)")
    return runs
