"""``yolo_attn.prune``: structured channel pruning of a YOLO model by BatchNorm |gamma| (network slimming).

The pruned network is a plain Ultralytics model: its modules are Ultralytics' and the kit's, only narrower, and its
YAML dict records the kept widths under ``slim`` so that every rebuild from the YAML (training, fine-tuning,
resume, DDP workers) builds the pruned network before loading its weights (``yolo_attn.integration.slim``).
"""

from __future__ import annotations

import copy
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch.nn as nn

from .graph import ChannelGraph, SlimError, analyse
from .plan import Plan, apply_plan, record, select

__all__ = ["SLIM_KEY", "SlimReport", "prune", "prune_network"]

SLIM_KEY = "slim"  # model-YAML key holding {group name: [kept, full width]}


@dataclass
class SlimReport:
    """What ``prune`` did.

    Attributes:
        params (tuple[int, int]): Parameters before and after.
        gflops (tuple[float, float]): GFLOPs at ``imgsz`` before and after (0 where Ultralytics cannot count).
        layers (list[tuple[int, str, list[tuple[str, int, int]]]]): Per top-level layer that lost channels:
            ``(index, class name, [(group, width, kept), ...])``.
        imgsz (int): Image size of the GFLOPs.
        out (Path | None): The checkpoint written.
        model (Any): The pruned ``YOLO`` object.
    """

    params: tuple[int, int]
    gflops: tuple[float, float]
    layers: list[tuple[int, str, list[tuple[str, int, int]]]] = field(default_factory=list)
    imgsz: int = 640
    out: Path | None = None
    model: Any = None

    def format(self) -> str:
        """Return the report as text: totals, then one line per pruned layer."""
        (p0, p1), (f0, f1) = self.params, self.gflops
        lines = [
            f"params  {p0:,} -> {p1:,} ({100 * (p1 / p0 - 1):+.1f}%)",
            f"GFLOPs  {f0:.2f} -> {f1:.2f} ({100 * (f1 / f0 - 1):+.1f}%) at imgsz={self.imgsz}"
            if f0
            else "GFLOPs  n/a",
            "kept channels per layer (group: width -> kept):",
        ]
        for i, kind, groups in self.layers:
            lines.append(f"  {i:>3} {kind:<8} " + ", ".join(f"{n} {w}->{k}" for n, w, k in groups))
        if self.out is not None:
            lines.append(f"saved {self.out}")
        return "\n".join(lines)


def _check_int(name: str, value: Any) -> int:
    """Return ``value`` as an int >= 1, or raise a ``SlimError`` naming the option."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise SlimError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _check_ratio(ratio: Any) -> float:
    """Return ``ratio`` as a float in (0, 1), or raise a ``SlimError``."""
    ok = isinstance(ratio, numbers.Real) and not isinstance(ratio, bool) and 0 < ratio < 1
    if not ok:
        raise SlimError(f"ratio must be a number in (0, 1): the fraction of prunable channels to remove, got {ratio!r}")
    return float(ratio)


def _layers_of(net: nn.Module) -> nn.Sequential:
    """Return an Ultralytics model's layer list, or raise a clear error for anything else."""
    layers = getattr(net, "model", None)
    if not isinstance(layers, nn.Sequential) or not all(hasattr(m, "f") for m in layers):
        raise SlimError(
            f"expected an Ultralytics YOLO model (a .pt checkpoint or a model YAML), got {type(net).__name__}"
        )
    return layers


def prune_network(net: nn.Module, ratio: float, multiple: int = 8, min_channels: int = 8) -> tuple[ChannelGraph, Plan]:
    """Prune an Ultralytics model (``DetectionModel``, ``ClassificationModel``, ...) in place and record the widths.

    Args:
        net (nn.Module): The model; its ``yaml`` dict gets the ``slim`` record.
        ratio (float): Fraction of prunable channels to remove, in (0, 1).
        multiple (int): Kept counts are multiples of this.
        min_channels (int): Every group keeps at least this many channels.

    Returns:
        (tuple[ChannelGraph, Plan]): The analysis (of the network before slicing) and the kept channels.

    Raises:
        SlimError: Bad arguments, nothing prunable, or a ratio that removes nothing after rounding.
    """
    ratio = _check_ratio(ratio)
    multiple, min_channels = _check_int("round", multiple), _check_int("min_channels", min_channels)
    graph = analyse(_layers_of(net), ch=int(getattr(net, "yaml", {}).get("channels", 3)))
    plan = select(graph, ratio, multiple, min_channels)
    if not plan:
        raise SlimError(
            f"ratio={ratio:g} removes no channel once widths are rounded to multiples of {multiple} (at least "
            f"{min_channels}); use a larger ratio or a smaller round"
        )
    yaml = getattr(net, "yaml", None)
    if isinstance(yaml, dict):
        yaml[SLIM_KEY] = record(graph, plan, yaml.get(SLIM_KEY))
    apply_plan(graph, plan)
    return graph, plan


def _summary(graph: ChannelGraph, plan: Plan) -> list[tuple[int, str, list[tuple[str, int, int]]]]:
    """Group the plan by top-level layer for the report."""
    rows: dict[int, list[tuple[str, int, int]]] = {}
    for gid, keep in sorted(plan.items()):
        g = graph.groups[gid]
        _, idx, *rest = g.name.split(".")
        rows.setdefault(int(idx), []).append((".".join(rest) or "conv", g.size, len(keep)))
    return [(i, graph.layers[i].split()[0], groups) for i, groups in sorted(rows.items())]


def _rebuild_check(net: nn.Module) -> None:
    """Build the model again from its YAML, as Ultralytics' trainer does, and check every tensor shape matches."""
    kw = {"nc": net.yaml.get("nc")} if "nc" in net.yaml else {}
    fresh = type(net)(cfg=copy.deepcopy(net.yaml), ch=int(net.yaml.get("channels", 3)), verbose=False, **kw)
    want = {k: v.shape for k, v in net.state_dict().items()}
    got = {k: v.shape for k, v in fresh.state_dict().items()}
    bad = sorted(k for k in want if got.get(k) != want[k])
    if bad:
        raise SlimError(
            f"the pruned network cannot be rebuilt from its YAML ({len(bad)} tensors differ, e.g. {bad[0]}: "
            f"{tuple(want[bad[0]])} vs {tuple(got.get(bad[0], ()))}); is yolo_attn.register() installed?"
        )


def prune(
    model: Any,
    ratio: float = 0.3,
    out: str | Path | None = None,
    round: int = 8,  # noqa: A002 (the CLI option's name)
    min_channels: int = 8,
    imgsz: int = 640,
) -> SlimReport:
    """Prune a YOLO model's channels by BatchNorm |gamma| and optionally save it as an Ultralytics checkpoint.

    The fraction ``ratio`` of all prunable channels with the smallest |gamma| (of the BatchNorm that produces them)
    is removed, with each layer's width rounded to a multiple of ``round`` and at least ``min_channels``. Residual
    sums, ``Concat``, ``C2f``'s split, depthwise convolutions and the kit's attention blocks are sliced consistently;
    heads keep their class, box, mask, keypoint and angle outputs. Train with an L1 penalty on BN scales first
    (``nam_penalty_scope=all``) so that the removed channels carry little; fine-tune afterwards.

    Args:
        model (str | Path | YOLO): A ``.pt`` checkpoint, a model YAML, or a ``YOLO`` object (pruned in place).
        ratio (float): Fraction of prunable channels to remove, in (0, 1).
        out (str | Path, optional): Where to write the pruned ``.pt`` (nothing is written on any error).
        round (int): Kept widths are multiples of this (8 keeps convolutions fast).
        min_channels (int): Every group keeps at least this many channels.
        imgsz (int): Image size for the GFLOPs in the report.

    Returns:
        (SlimReport): Parameters and GFLOPs before and after, kept channels per layer, the pruned ``YOLO`` object.

    Raises:
        SlimError: Bad arguments, nothing prunable, or a result that could not be rebuilt from its YAML.
        FileNotFoundError: ``model`` names a checkpoint that does not exist.
    """
    from ultralytics import YOLO
    from ultralytics.utils.torch_utils import get_flops

    _check_ratio(ratio)
    _check_int("round", round)
    _check_int("min_channels", min_channels)
    if out is not None and Path(out).suffix != ".pt":
        raise SlimError(f"out must be a .pt file path, got {str(out)!r}")
    if isinstance(model, (str, Path)):
        if Path(model).suffix == ".pt" and not Path(model).is_file():
            raise FileNotFoundError(f"model checkpoint not found: {model}")
        model = YOLO(str(model))
    net = getattr(model, "model", None)
    if not isinstance(net, nn.Module):
        raise SlimError(f"expected a PyTorch YOLO model (a .pt checkpoint or a model YAML), got {type(model).__name__}")
    _layers_of(net)
    params0, gflops0 = sum(p.numel() for p in net.parameters()), get_flops(net, imgsz)
    work = copy.deepcopy(net).float()  # the caller's model stays intact until everything succeeded
    graph, plan = prune_network(work, ratio, round, min_channels)
    _rebuild_check(work)
    work.to(next(net.parameters()).dtype)
    model.model = work
    report = SlimReport(
        params=(params0, sum(p.numel() for p in work.parameters())),
        gflops=(gflops0, get_flops(work, imgsz)),
        layers=_summary(graph, plan),
        imgsz=imgsz,
        model=model,
    )
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(model.ckpt, dict):  # a checkpoint to start from, not a run to resume
            model.ckpt = {**model.ckpt, "optimizer": None, "epoch": -1}
        model.save(out)
        report.out = Path(out)
    return report
