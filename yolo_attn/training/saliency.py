"""Channel saliency of a trained model: per attention block, how its scale factors |gamma| are distributed.

Every kit block that declares scale factors (``AttentionGate.scale_factors()``) is reported, one row per scale-factor
tensor. For NAM, ``W_gamma = |gamma| / sum|gamma|`` is the channel weight, so a channel whose |gamma| has been driven
towards 0 by the sparsity penalty contributes almost nothing to the gate. (Whether a channel can be *removed* is
decided by the BN scale of the convolution that produces it: NAM's gate of a channel with gamma near 0 is 0.5, not 0.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..modules import AttentionGate
from .penalty import network

__all__ = ["SPARSITY_THRESHOLD", "format_saliency", "gate_layers", "nam_saliency", "scale_factor_tensors"]

SPARSITY_THRESHOLD = 1e-2  # |gamma| below this counts as pruned-to-be (BN gammas start at 1.0)


def gate_layers(model: nn.Module) -> list[tuple[str, AttentionGate]]:
    """Return ``(name, block)`` for every attention block in ``model`` that has scale factors.

    Args:
        model (nn.Module): A YOLO ``DetectionModel`` or any module.

    Returns:
        (list[tuple[str, AttentionGate]]): The blocks in order, named by YOLO layer index where there is one.
    """
    out = []
    for name, m in model.named_modules():
        if isinstance(m, AttentionGate) and m.scale_factors():
            idx = name.split(".")[1] if name.startswith("model.") else name
            out.append((f"layer {idx}" if idx.isdigit() else name, m))
    return out


def scale_factor_tensors(model: nn.Module) -> list[tuple[str, str, AttentionGate, torch.Tensor]]:
    """Return ``(layer, parameter name, block, |values|)`` for each scale-factor tensor of each block.

    Args:
        model (nn.Module): The network.

    Returns:
        (list[tuple]): One entry per tensor; the values are detached float absolute values.
    """
    out = []
    for layer, m in gate_layers(model):
        names = {id(w): n for n, w in m.named_parameters()}
        out += [(layer, names.get(id(w), "?"), m, w.detach().abs().float().flatten()) for w in m.scale_factors()]
    return out


def nam_saliency(model: Any, threshold: float = SPARSITY_THRESHOLD) -> list[dict]:
    """Report each attention block's channel saliency (its declared scale factors, e.g. NAM's gamma).

    Args:
        model (str | Path | ultralytics.YOLO | nn.Module): A checkpoint path, a YOLO model or a module.
        threshold (float): |gamma| below this counts as a low-saliency channel.

    Returns:
        (list[dict]): Per scale-factor tensor: ``layer``, ``channels``, ``below`` (count under threshold),
            ``mean_abs_gamma``, ``min_abs_gamma``, ``max_abs_gamma``, ``weight_share_below`` (share of the tensor's
            L1 mass held by those channels: for NAM's gamma, of its channel weight W_gamma), ``block`` (class name),
            ``param`` (parameter name inside the block, e.g. ``bn.weight``).
    """
    if isinstance(model, (str, Path)):
        from ultralytics import YOLO

        model = YOLO(str(model))
    net = network(model)
    if not isinstance(net, nn.Module):
        what = type(model).__name__
        raise TypeError(f"nam_saliency needs a checkpoint path, a YOLO model or an nn.Module, got {what}")
    rows = []
    for layer, param, m, g in scale_factor_tensors(net):
        low = g < threshold
        rows.append(
            {
                "layer": layer,
                "channels": g.numel(),
                "below": int(low.sum()),
                "mean_abs_gamma": float(g.mean()),
                "min_abs_gamma": float(g.min()),
                "max_abs_gamma": float(g.max()),
                "weight_share_below": float(g[low].sum() / g.sum().clamp_min(1e-12)),
                "block": type(m).__name__,
                "param": param,
            }
        )
    return rows


def format_saliency(rows: list[dict], threshold: float = SPARSITY_THRESHOLD) -> str:
    """Format :func:`nam_saliency` rows as a text table.

    Args:
        rows (list[dict]): The report.
        threshold (float): The threshold used, for the header.

    Returns:
        (str): The table.
    """
    head = (f"{'layer':<12}{'channels':>9}{f'< {threshold:g}':>10}{'mean|g|':>10}{'min|g|':>10}{'max|g|':>10}"
            f"{'W share <':>11}  scale factor")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['layer']:<12}{r['channels']:>9}{r['below']:>10}{r['mean_abs_gamma']:>10.4f}{r['min_abs_gamma']:>10.4f}"
            f"{r['max_abs_gamma']:>10.4f}{r['weight_share_below']:>11.2%}  {r.get('block', '')} {r.get('param', '')}"
        )
    if not rows:
        lines.append("(no attention blocks with scale factors)")
    return "\n".join(lines)
