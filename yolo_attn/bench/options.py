"""The bench's options, defined once: ``run_bench``'s signature, its checks, ``yolo-attn bench``'s parsing and help.

Each ``Option`` names its default, how command-line text becomes a value (``type``), how a value is checked
(``check``) and what to tell the user (``help``); everything else is derived from ``OPTIONS``. Defaults that depend on
the hardware (dataset, image size, batch, epochs or time budget) come from one preset, chosen by ``select_preset``.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import PRESETS as TRAINING_PRESETS
from ..data import TrainPreset

__all__ = [
    "OPTIONS",
    "PRESETS",
    "SIGNATURE",
    "BenchSettings",
    "BenchSettingsError",
    "UnknownBenchOption",
    "Option",
    "Preset",
    "check_settings",
    "default_models",
    "resolve_device",
    "select_preset",
    "split_list",
    "usage",
]


class BenchSettingsError(ValueError):
    """A benchmark argument is invalid (raised before any training starts)."""


class UnknownBenchOption(BenchSettingsError, TypeError):
    """``run_bench`` got a keyword that is no bench option (a ``TypeError`` too, as for any Python function)."""


# ---------------------------------------------------------------------------------------------------------- presets


@dataclass(frozen=True)
class Preset:
    """Hardware-dependent defaults of a bench run, used for every option the user leaves out.

    Attributes:
        name (str): ``"cpu"`` or ``"gpu"``.
        imgsz (int): Training image size.
        batch (int): Training batch size.
        epochs (int | None): Epochs per run; with a budget, the most it may choose.
        budget (float | None): Minutes for the whole table; None for fixed ``epochs``.
        data (str): Built-in dataset (a key of ``yolo_attn.data.DATASETS``).
        train_args (dict): Further Ultralytics training arguments of every run (e.g. ``optimizer``, ``lr0``).
        note (str): What the preset is for, shown in the help.
    """

    name: str
    imgsz: int
    batch: int
    epochs: int | None
    budget: float | None
    data: str
    train_args: dict = field(default_factory=dict)
    note: str = ""


# Minutes for the whole default table (5 models x 3 seeds, latency included) where the preset's epochs are only a cap:
# on a GPU the table must fit about 10 minutes whatever the GPU, so the epochs are planned from a one-epoch probe
BUDGETS: dict[str, float] = {"gpu": 10.0}


def _from_training(p: TrainPreset) -> Preset:
    """Return the bench preset of a training preset: its dataset, size, batch, epochs and optimizer settings."""
    extra = {k: v for k, v in p.train_args().items() if k not in {"imgsz", "batch", "epochs"}}
    return Preset(p.name, imgsz=p.imgsz, batch=p.batch, epochs=p.epochs, budget=BUDGETS.get(p.name), data=p.dataset,
                  train_args=extra, note=p.note)


# The values live with the built-in datasets (yolo_attn.data.PRESETS), shared with the quick start
PRESETS: dict[str, Preset] = {name: _from_training(p) for name, p in TRAINING_PRESETS.items()}


def resolve_device(device: str | int | None) -> str:
    """Return the training device: ``None``/``"auto"`` picks the first CUDA GPU if there is one, else the CPU."""
    if device is None or str(device).strip().lower() in {"", "auto"}:
        return "0" if torch.cuda.is_available() else "cpu"
    return str(device).strip()


def _is_cuda(device: str) -> bool:
    """Return whether an Ultralytics device string names CUDA GPUs."""
    return device.lower() not in {"cpu", "mps"}


def select_preset(device: str | int | None = None) -> Preset:
    """Return the preset for a training device: the GPU preset for CUDA devices, else the CPU preset.

    Args:
        device (str | int, optional): As Ultralytics takes it (``cpu``, ``0``, ``0,1``); None or ``"auto"``: CUDA
            when available.

    Returns:
        (Preset): The preset.
    """
    return PRESETS["gpu" if _is_cuda(resolve_device(device)) else "cpu"]


def default_models(n_blocks: int = 4, base: str = "yolov8n") -> tuple[str, ...]:
    """Return the default model list: stock ``base`` and the ready-made config of the first registered blocks.

    Args:
        n_blocks (int): How many blocks, in registry order; blocks without a ready-made config are skipped.
        base (str): Stock model name with its scale letter.

    Returns:
        (tuple[str, ...]): ``base.yaml`` then ``base-<block>.yaml`` per block.
    """
    from ..integration import find_config
    from ..registry import BLOCKS

    family = base[:-1]  # the ready-made files are scale-free: yolov8-se.yaml serves yolov8n-se.yaml
    found = [f"{base}-{n.lower()}.yaml" for n in BLOCKS.names() if find_config(f"{family}-{n.lower()}.yaml")]
    return (f"{base}.yaml", *found[:n_blocks])


# ---------------------------------------------------------------------------------------------------------- checks


def _int(name: str, value: object, low: int, multiple: int = 1) -> int:
    """Return ``value`` as an int >= ``low`` (and a multiple of ``multiple``), else raise BenchSettingsError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low or value % multiple:
        extra = f" and a multiple of {multiple}" if multiple > 1 else ""
        raise BenchSettingsError(f"bench: {name} must be an integer >= {low}{extra}, got {value!r}")
    return int(value)


def _optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Let ``None`` (the preset's value) through ``check``."""
    return lambda v: None if v is None else check(v)


def split_list(text: str) -> list[str]:
    """Split ``a,b``, ``[a,b]`` or ``(a, b)`` (Ultralytics' list syntax) into stripped, unquoted, non-empty items."""
    text = text.strip()
    if len(text) >= 2 and (text[0], text[-1]) in {("[", "]"), ("(", ")")}:
        text = text[1:-1]
    return [t.strip().strip("'\"").strip() for t in text.split(",") if t.strip().strip("'\"").strip()]


def _check_models(models: Sequence[str] | str) -> tuple[str, ...]:
    """Check the model list: YAML names, distinct file stems (they name the run directories)."""
    if isinstance(models, str):
        models = split_list(models)
    if not isinstance(models, Sequence) or not models:
        raise BenchSettingsError(f"bench: models must be a non-empty list of model YAMLs, got {models!r}")
    models = tuple(str(m) for m in models)
    for m in models:
        if not m.endswith((".yaml", ".yml")):
            raise BenchSettingsError(f"bench: model {m!r} is not a model YAML; give e.g. yolov8n-nam.yaml")
    stems = [Path(m).stem for m in models]
    if len(set(stems)) != len(stems):
        raise BenchSettingsError(f"bench: models must have distinct file names, got {list(models)}")
    return models


def _check_seeds(seeds: Sequence[int] | int) -> tuple[int, ...]:
    """Check the seeds: a non-empty list of distinct integers >= 0."""
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        seeds = (seeds,)
    if isinstance(seeds, str) or not isinstance(seeds, Sequence) or not seeds:
        raise BenchSettingsError(f"bench: seeds must be a non-empty list of integers, e.g. (0, 1, 2), got {seeds!r}")
    seeds = tuple(_int("each seed", s, 0) for s in seeds)
    if len(set(seeds)) != len(seeds):
        raise BenchSettingsError(f"bench: seeds must be distinct, got {list(seeds)}")
    return seeds


def _check_budget(budget: float) -> float:
    """Check a budget in minutes."""
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not math.isfinite(budget) or budget <= 0:
        raise BenchSettingsError(f"bench: budget must be a number of minutes > 0, got {budget!r}")
    return float(budget)


def _check_bool(value: object) -> bool:
    """Check a true/false option (a bool, not a string that merely looks like one)."""
    if not isinstance(value, (bool, np.bool_)):
        raise BenchSettingsError(f"bench: verbose must be True or False, got {value!r}")
    return bool(value)


def _flag(text: str) -> bool:
    """Parse ``true``/``false`` (any case)."""
    if text.lower() not in {"true", "false"}:
        raise ValueError(text)
    return text.lower() == "true"


def _ints(text: str) -> list[int]:
    """Parse an integer list in either list syntax."""
    return [int(t) for t in split_list(text)]


def _path(value: object) -> str:
    """Check a path-like option."""
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise BenchSettingsError(f"bench: expected a path, got {value!r}")
    return str(value)


# ---------------------------------------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Option:
    """One bench option.

    Attributes:
        name (str): Keyword of ``run_bench`` and key of ``yolo-attn bench key=value``.
        type (Callable[[str], Any]): Command-line text -> value; raises ValueError on bad text.
        default (Any): Default value; None where the preset (or the other options) decide.
        check (Callable[[Any], Any]): Value -> checked value; raises BenchSettingsError naming the option.
        help (str): One line for ``yolo-attn bench help`` and the docs.
        what (str): What command-line text must be, for the error message.
        cli (bool): Whether ``yolo-attn bench`` takes it (``command`` is filled in by the CLI itself).
    """

    name: str
    type: Callable[[str], Any]
    default: Any
    check: Callable[[Any], Any]
    help: str
    what: str = ""
    cli: bool = True


OPTIONS: tuple[Option, ...] = (
    Option("models", split_list, None, _optional(_check_models),
           "model YAMLs, the first is the reference; default: stock YOLOv8n and the ready-made yolov8n config of "
           "the first four registered blocks", "a list of model YAMLs, e.g. [yolov8n.yaml,yolov8n-se.yaml]"),
    Option("seeds", _ints, (0, 1, 2), _check_seeds,
           "training seeds, the same for every model; at least 2 for an interval", "a comma-separated list of "
           "integers, e.g. 0,1,2"),
    Option("epochs", int, None, _optional(lambda v: _int("epochs", v, 1)),
           "epochs per run; with a budget, the most it may choose (default: the preset's); alone, no budget",
           "an integer"),
    Option("budget", float, None, _optional(_check_budget),
           "minutes for the whole run; epochs are chosen to fit after a one-epoch probe of each model (default: the "
           "preset's, if it has one)", "a number of minutes"),
    Option("imgsz", int, None, _optional(lambda v: _int("imgsz", v, 32)),
           "training image size (default: the preset's)", "an integer"),
    Option("batch", int, None, _optional(lambda v: _int("batch", v, 1)),
           "training batch size (default: the preset's)", "an integer"),
    Option("data", str, None, _optional(_path),
           "data YAML (default: the preset's built-in digits dataset)", "a data YAML"),
    Option("device", str, None, _optional(lambda v: str(v).strip()),
           "training device: cpu, 0, 0,1 or auto (default: the first CUDA GPU, else the CPU); latency is CPU",
           "a device"),
    Option("latency_imgsz", int, 640, lambda v: _int("latency_imgsz", v, 32, multiple=32),
           "input side for latency, parameters and GFLOPs", "an integer"),
    Option("latency_repeats", int, None, _optional(lambda v: _int("latency_repeats", v, 1)),
           "interleaved latency rounds, each running every model and the A/A copy once (default: at least 50, then "
           "more, up to 400, until every ratio's 95% interval is within ±0.01)", "an integer"),
    Option("out", str, "bench", _path,
           "directory for bench.md/json/png (replaced) and the training runs (runs/)", "a directory"),
    Option("verbose", _flag, False, _check_bool, "show Ultralytics' per-epoch training output",
           "true or false"),
    Option("command", str, None, _optional(str), "command line recorded in the report; default: the call",
           cli=False),
)

_BY_NAME = {o.name: o for o in OPTIONS}

SIGNATURE = inspect.Signature(
    [inspect.Parameter(o.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=o.default) for o in OPTIONS]
)
"""``run_bench``'s signature, in option order."""

BenchSettings = make_dataclass(
    "BenchSettings",
    [(o.name, Any) for o in OPTIONS] + [("preset", str)],
    frozen=True,
    namespace={"__doc__": "Checked bench settings: one attribute per option in ``OPTIONS`` (models and seeds as "
                          "tuples, out as a resolved Path, device and the preset's defaults filled in), and the "
                          "name of the preset used."},
)
BenchSettings.__module__ = __name__


def check_settings(*args: Any, **kwargs: Any) -> BenchSettings:
    """Check the bench arguments (those of ``run_bench``) and fill in the preset's defaults.

    Returns:
        (BenchSettings): The settings.

    Raises:
        BenchSettingsError: A value is invalid; the message names the option and what is allowed.
        UnknownBenchOption: An unknown keyword (a ``BenchSettingsError`` and a ``TypeError``).
    """
    unknown = [k for k in kwargs if k not in _BY_NAME]
    if unknown:
        from ..registry import did_you_mean

        raise UnknownBenchOption(
            f"bench: unknown option {unknown[0]!r}.{did_you_mean(unknown[0], list(_BY_NAME))} "
            f"Options: {', '.join(_BY_NAME)}"
        )
    bound = SIGNATURE.bind(*args, **kwargs)
    bound.apply_defaults()
    v = {name: _BY_NAME[name].check(value) for name, value in bound.arguments.items()}
    v["models"] = v["models"] or default_models()
    v["device"] = resolve_device(v["device"])
    preset = select_preset(v["device"])
    if v["epochs"] is None and v["budget"] is None:
        v["epochs"], v["budget"] = preset.epochs, preset.budget
    v["imgsz"] = preset.imgsz if v["imgsz"] is None else v["imgsz"]
    v["batch"] = preset.batch if v["batch"] is None else v["batch"]
    if v["command"] is None:
        shown = {k: (list(x) if isinstance(x, tuple) else x) for k, x in v.items() if k not in {"command", "verbose"}}
        v["command"] = "yolo_attn.run_bench(" + ", ".join(f"{k}={x!r}" for k, x in shown.items()) + ")"
    v["out"] = Path(v["out"]).expanduser().resolve()
    return BenchSettings(**v, preset=preset.name)


def usage() -> str:
    """Return ``yolo-attn bench``'s help: one line per option with its default, and the presets."""
    lines = ["yolo-attn bench [key=value ...]: train the stock model and each variant with the same seeds; write "
             "bench.md, bench.json and bench.png", ""]
    for o in OPTIONS:
        if o.cli:
            shown = ",".join(map(str, o.default)) if isinstance(o.default, tuple) else o.default
            lines.append(f"  {o.name:<16} {o.help}" + ("" if o.default is None else f" (default: {shown})"))
    lines.append("\nPresets (by training device):")
    for p in PRESETS.values():
        cost = f"{p.epochs} epochs" + (f" at most, within a {p.budget:g} min budget" if p.budget else "")
        extra = "".join(f", {k} {v}" for k, v in p.train_args.items())
        lines.append(f"  {p.name:<4} data {p.data}.yaml, imgsz {p.imgsz}, batch {p.batch}, {cost}{extra}: {p.note}")
    return "\n".join(lines)
