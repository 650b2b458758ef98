"""Placement: which rows of a base model an attention row goes after (``at=backbone|neck|all|indices``).

- ``backbone``: after the last stage block of each backbone stride level. A stage block is any backbone row that is
  not a plain convolution, pooling, resampling or Concat row (Conv, GhostConv, DWConv, ADown, SCDown, nn.Upsample,
  ...), not a backbone tail (SPP, SPPF, SPPELAN, PSA, C2PSA, C2fPSA, AIFI) and not an attention block. Strides are
  measured by building the backbone once at its first scale (a 256 px forward pass), so any module's resolution
  change is seen.
- ``neck``: after every layer the output row (Detect, Segment, Pose, OBB, Classify, ...) reads.
- ``all``: both, without duplicates.
- indices, e.g. ``3,6`` or ``[3, 6]``: after those rows of the base; names and indices combine (``backbone,12``).
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import os
import re
from collections.abc import Sequence

from ..registry import BLOCKS
from ..rows import inputs
from .lookup import Base, load_base

__all__ = ["NOT_STAGE_BLOCKS", "PLACEMENTS", "PLACEMENT_TEXT", "parse_at", "placement_rows", "resolve_placement"]

PLACEMENTS = ("backbone", "neck", "all")
PLACEMENT_TEXT = {
    "backbone": "the last block of each backbone stage",
    "neck": "each layer the output row reads",
    "all": "the last block of each backbone stage and each layer the output row reads",
}
STRIDE_PROBE_IMGSZ = 256  # Ultralytics' own stride probe size: P6/64 still gives a 4x4 map

# Backbone rows that never end a stage: single convolutions, pooling, resampling, routing, and the tail modules that
# pool global context for the neck.
NOT_STAGE_BLOCKS = frozenset(
    {
        "Conv", "Conv2", "GhostConv", "DWConv", "LightConv", "RepConv", "ConvTranspose", "DWConvTranspose2d",
        "Focus", "ADown", "AConv", "SCDown", "HGStem", "Concat", "Index", "CBLinear", "CBFuse",
        "nn.Conv2d", "nn.ConvTranspose2d", "nn.Upsample", "nn.MaxPool2d", "nn.AvgPool2d", "nn.Identity",
        "nn.BatchNorm2d",
        "SPP", "SPPF", "SPPELAN", "PSA", "C2PSA", "C2fPSA", "AIFI",
    }
)  # fmt: skip


def parse_at(at: str | int | Sequence[str | int]) -> list[str | int]:
    """Split ``at`` into placement names and row indices.

    Args:
        at (str | int | Sequence): ``"backbone,12"``, ``"[3, 6]"``, ``[3, 6]`` or ``3``.

    Returns:
        (list[str | int]): Lower-case placement names and integers, in the given order.

    Raises:
        ValueError: An unknown name (with a did-you-mean) or an empty placement.
    """
    items = at.strip().strip("[]").split(",") if isinstance(at, str) else [at] if isinstance(at, int) else list(at)
    out: list[str | int] = []
    for item in items:
        if isinstance(item, bool):
            raise ValueError(f"at: expected a placement name or a row index, got {item!r}")
        token = item.strip() if isinstance(item, str) else item
        if isinstance(token, int) or (isinstance(token, str) and re.fullmatch(r"-?\d+", token)):
            out.append(int(token))
        elif isinstance(token, str) and token.lower() in PLACEMENTS:
            out.append(token.lower())
        else:
            close = difflib.get_close_matches(str(token).lower(), PLACEMENTS, n=1, cutoff=0.5)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ValueError(
                f"at: unknown placement {token!r}.{hint} Use {', '.join(PLACEMENTS)} or row indices of the base, "
                "e.g. at=backbone or at=2,4"
            )
    if not out:
        raise ValueError("at: empty placement; use backbone, neck, all or row indices, e.g. at=2,4")
    return out


@functools.lru_cache(maxsize=64)
def _probe_strides(key: str) -> tuple[int | None, ...]:
    """Measure each backbone row's stride by building the backbone (plus a Classify row) and running 256 px zeros.

    Args:
        key (str): JSON of ``[backbone, scales, channels]`` (hashable, so results are cached per backbone).

    Returns:
        (tuple): Per backbone row, the input size divided by its output size, or None for non-map outputs.
    """
    import torch
    from ultralytics.nn.tasks import ClassificationModel

    from ..integration import register

    register()  # a base may already hold kit blocks
    backbone, scales, ch = json.loads(key)
    cfg = {"nc": 10, "backbone": backbone, "head": [[-1, 1, "Classify", ["nc"]]], "channels": ch}
    if scales:
        cfg.update(scales=scales, scale=next(iter(scales)))
    model = ClassificationModel(cfg, ch=ch, verbose=False).eval()
    sizes: dict[int, int | None] = {}
    hooks = [
        layer.register_forward_hook(
            lambda m, x, y, i=i: sizes.__setitem__(i, y.shape[-2] if torch.is_tensor(y) and y.dim() == 4 else None)
        )
        for i, layer in enumerate(model.model[: len(backbone)])
    ]
    try:
        with torch.no_grad():
            model(torch.zeros(1, ch, STRIDE_PROBE_IMGSZ, STRIDE_PROBE_IMGSZ))
    finally:
        for h in hooks:
            h.remove()
    sizes_in_order = [sizes.get(i) for i in range(len(backbone))]
    return tuple(STRIDE_PROBE_IMGSZ // s if s and STRIDE_PROBE_IMGSZ % s == 0 else None for s in sizes_in_order)


def _backbone_strides(base: Base) -> list[int | None]:
    """Return each backbone row's stride (see ``_probe_strides``); a clear error when the backbone does not build."""
    cfg = base.cfg
    key = json.dumps([cfg["backbone"], cfg.get("scales"), cfg.get("channels", 3)], default=str)
    try:
        return list(_probe_strides(key))
    except Exception as e:  # any build or forward error of the user's backbone
        raise ValueError(
            f"at=backbone needs the stride of each backbone row of {base.name}, measured by building its backbone; "
            f"that failed ({type(e).__name__}: {e}). Name the rows instead, e.g. at=2,4."
        ) from e


def _stage_ends(base: Base) -> dict[int, str]:
    """Return {backbone row: 'stage Pn end'} for the last stage block of each backbone stride level."""
    last: dict[int, int] = {}
    for i, (row, s) in enumerate(zip(base.cfg["backbone"], _backbone_strides(base))):
        if s is not None and row[2] not in NOT_STAGE_BLOCKS and row[2] not in BLOCKS:
            last[s] = i
    return {i: f"stage P{round(math.log2(s))} end" for s, i in last.items()}


def resolve_placement(base: Base, items: list[str | int]) -> dict[int, str]:
    """Resolve parsed ``at`` items against a loaded base (see ``placement_rows``).

    Args:
        base (Base): The loaded base.
        items (list[str | int]): From ``parse_at``.

    Returns:
        (dict[int, str]): {base row index: role}, sorted by index.
    """
    rows = base.rows
    last = len(rows) - 1
    roles: dict[int, list[str]] = {}
    names = {x for x in items if isinstance(x, str)}
    if names & {"backbone", "all"}:
        stages = _stage_ends(base)
        if not stages:
            raise ValueError(f"at=backbone: {base.name} has no backbone stage blocks to follow; give row indices")
        for i, role in stages.items():
            roles.setdefault(i, []).append(role)
    if names & {"neck", "all"}:
        for j in inputs(last, rows[-1][0]):
            roles.setdefault(j, []).append(f"{rows[-1][2]} input")
    for k in (x for x in items if isinstance(x, int)):
        if not 0 <= k < last:
            raise ValueError(
                f"at: row {k} is out of range: {base.name} has rows 0-{last}, and attention can follow rows "
                f"0-{last - 1} (row {last} is the output layer {rows[-1][2]})"
            )
        roles.setdefault(k, [])
    return {k: ", ".join(dict.fromkeys(roles[k])) for k in sorted(roles)}


def placement_rows(base: str | os.PathLike, at: str | int | Sequence[str | int] = "backbone") -> dict[int, str]:
    """Return the base rows a placement puts an attention row after, each with the role that picked it.

    Args:
        base (str | os.PathLike): Model YAML name or path (see ``resolve_base``).
        at (str | int | Sequence): ``backbone``, ``neck``, ``all``, row indices, or a comma-separated mix.

    Returns:
        (dict[int, str]): {base row index: role, e.g. "stage P3 end", "Detect input", ""}, sorted by index.
    """
    return resolve_placement(load_base(base), parse_at(at))
