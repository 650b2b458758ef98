"""NAM channel saliency of a trained model: per NAM layer, how its BN scale factors |gamma| are distributed.

``W_gamma = |gamma| / sum|gamma|`` is NAM's channel weight, so a channel whose |gamma| has been driven towards 0
by the sparsity penalty contributes almost nothing to the gate: a pruning candidate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch.nn as nn

from ..modules import NAM

__all__ = ["SPARSITY_THRESHOLD", "nam_layers", "nam_saliency", "format_saliency"]

SPARSITY_THRESHOLD = 1e-2  # |gamma| below this counts as pruned-to-be (BN gammas start at 1.0)


def nam_layers(model: nn.Module) -> list[tuple[str, NAM]]:
    """Return ``(name, module)`` for every NAM in ``model``, named by YOLO layer index where there is one.

    Args:
        model (nn.Module): A YOLO ``DetectionModel`` or any module.

    Returns:
        (list[tuple[str, NAM]]): The NAM layers in order.
    """
    out = []
    for name, m in model.named_modules():
        if isinstance(m, NAM):
            idx = name.split(".")[1] if name.startswith("model.") else name
            out.append((f"layer {idx}" if idx.isdigit() else name, m))
    return out


def nam_saliency(model: Any, threshold: float = SPARSITY_THRESHOLD) -> list[dict]:
    """Report each NAM layer's channel saliency.

    Args:
        model (str | Path | ultralytics.YOLO | nn.Module): A checkpoint path, a YOLO model or a module.
        threshold (float): |gamma| below this counts as a low-saliency channel.

    Returns:
        (list[dict]): Per layer: ``layer``, ``channels``, ``below`` (count under threshold), ``mean_abs_gamma``,
            ``min_abs_gamma``, ``max_abs_gamma``, ``weight_share_below`` (share of NAM's channel weight W_gamma held
            by those channels).
    """
    if isinstance(model, (str, Path)):
        from ultralytics import YOLO

        model = YOLO(str(model))
    net = getattr(model, "model", model)
    rows = []
    for name, m in nam_layers(net):
        g = m.bn.weight.detach().abs().float()
        low = g < threshold
        rows.append(
            {
                "layer": name,
                "channels": g.numel(),
                "below": int(low.sum()),
                "mean_abs_gamma": float(g.mean()),
                "min_abs_gamma": float(g.min()),
                "max_abs_gamma": float(g.max()),
                "weight_share_below": float(g[low].sum() / g.sum().clamp_min(1e-12)),
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
    head = f"{'layer':<12}{'channels':>9}{f'< {threshold:g}':>10}{'mean|g|':>10}{'min|g|':>10}{'max|g|':>10}{'W share <':>11}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['layer']:<12}{r['channels']:>9}{r['below']:>10}{r['mean_abs_gamma']:>10.4f}{r['min_abs_gamma']:>10.4f}"
            f"{r['max_abs_gamma']:>10.4f}{r['weight_share_below']:>11.2%}"
        )
    if not rows:
        lines.append("(no NAM layers)")
    return "\n".join(lines)
