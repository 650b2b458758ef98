"""Which channels to keep (global |gamma| threshold, rounded widths), and slicing a network to them.

A plan maps every group to the sorted indices of the channels it keeps. Plans come from the BN scales
(:func:`select`) or from a recorded list of widths (:func:`from_record`, keeping the first channels of each group:
how a pruned network is rebuilt from its YAML before its weights are loaded).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..modules.base import slice_conv2d, slice_norm, slice_param
from .graph import ChannelGraph, SlimError

__all__ = ["apply_plan", "from_record", "record", "removed_bn_channels", "select"]

Plan = dict[int, torch.Tensor]  # group id -> kept channel indices (sorted); absent: kept whole


def _rounded(n: int, size: int, multiple: int, min_channels: int) -> int:
    """Round a kept count to the nearest multiple, at least ``min_channels`` (or the whole group), at most ``size``."""
    k = int((n + multiple / 2) // multiple * multiple) if multiple > 1 else n
    return max(min(k, size), min(min_channels, size), 1)


def select(graph: ChannelGraph, ratio: float, multiple: int = 8, min_channels: int = 8) -> Plan:
    """Choose the channels to keep: the fraction ``ratio`` of all prunable channels with the smallest |gamma| goes.

    One global ranking (equal scores are taken in proportion from every group, so the result is deterministic);
    then per group the kept count is rounded to a multiple of ``multiple`` and floored at ``min_channels``; groups
    tied in width (``C2f``'s halves) keep the larger count of the two; each group keeps its highest-scoring channels.

    Args:
        graph (ChannelGraph): The analysed network.
        ratio (float): Fraction of prunable channels to remove, in (0, 1).
        multiple (int): Kept counts are multiples of this (>= 1).
        min_channels (int): No group keeps fewer channels than this (>= 1).

    Returns:
        (Plan): Kept indices for every group that loses channels.

    Raises:
        SlimError: Nothing in the network can be pruned.
    """
    groups = [g for g in graph.groups if g.prunable]
    if not groups:
        raise SlimError("nothing to prune: no channel group of this model is produced by a BatchNorm that can be "
                        "sliced (a fused model has none left: prune the unfused checkpoint)")
    scores = [g.scores() for g in groups]
    flat = torch.cat(scores)
    # equal scores (an untrained model's gammas are all 1) go in proportion across groups: by relative position
    where = torch.cat([torch.arange(g.size, dtype=torch.float32) / g.size for g in groups])
    order = torch.sort(where, stable=True).indices
    order = order[torch.sort(flat[order], stable=True).indices]
    removed = torch.zeros(len(flat), dtype=torch.bool)
    removed[order[: int(ratio * len(flat))]] = True
    counts, start = {}, 0
    for g in groups:
        counts[g.gid] = g.size - int(removed[start : start + g.size].sum())
        start += g.size
    tied: dict[int, int] = {}
    for g in groups:
        if g.tie is not None:
            tied[g.tie] = max(tied.get(g.tie, 0), counts[g.gid])
    plan = {}
    for g, s in zip(groups, scores):
        k = _rounded(tied[g.tie] if g.tie is not None else counts[g.gid], g.size, multiple, min_channels)
        if k < g.size:
            plan[g.gid] = torch.sort(torch.topk(s, k, sorted=False).indices).values
    for g in graph.groups:  # a tie partner that is pinned keeps its partner whole too (C2f's chunk needs equal halves)
        if g.tie is not None and not g.prunable:
            for h in graph.groups:
                if h.tie == g.tie:
                    plan.pop(h.gid, None)
    return plan


def removed_bn_channels(graph: ChannelGraph, plan: Plan) -> dict[str, torch.Tensor]:
    """Return, per producing BatchNorm (by module path), the channel indices the plan removes.

    Zeroing those BatchNorms' weight and bias at those indices gives the unpruned network that computes exactly what
    the pruned one computes (the function-preservation reference).

    Args:
        graph (ChannelGraph): The analysed network.
        plan (Plan): The plan.

    Returns:
        (dict[str, torch.Tensor]): ``{bn_name: indices}``.
    """
    out: dict[str, list[torch.Tensor]] = {}
    for gid, keep in plan.items():
        g = graph.groups[gid]
        mask = torch.ones(g.size, dtype=torch.bool)
        mask[keep] = False
        for name, _, off in g.producers:
            out.setdefault(name, []).append(mask.nonzero().flatten() + off)
    return {k: torch.cat(v) for k, v in out.items()}


def _slot_index(graph: ChannelGraph, layout: list[int], plan: Plan) -> tuple[torch.Tensor, int]:
    """Return the kept indices of a slot's dimension and its current size."""
    parts, off = [], 0
    for gid in layout:
        size = graph.groups[gid].size
        keep = plan.get(gid)
        parts.append((keep if keep is not None else torch.arange(size)) + off)
        off += size
    return (torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)), off


@torch.no_grad()
def apply_plan(graph: ChannelGraph, plan: Plan) -> None:
    """Slice every module of the network in place to the plan (each kit block through ``prune_channels``).

    Args:
        graph (ChannelGraph): The analysed network (its slots reference the modules).
        plan (Plan): Kept indices per group.
    """
    for slot in graph.slots:
        keep, size = _slot_index(graph, slot.layout, plan)
        if len(keep) == size:
            continue
        m = slot.module
        if slot.role in {"out", "dw"}:
            slice_conv2d(m, out_keep=keep)
        elif slot.role == "in":
            slice_conv2d(m, in_keep=keep)
        elif slot.role == "bn":
            slice_norm(m, keep)
        elif slot.role == "gate":
            m.prune_channels(keep)
        elif slot.role == "linear_in":
            slice_param(m, "weight", keep, 1)
            m.in_features = len(keep)
        elif slot.role == "convt_in":  # ConvTranspose2d weight: (in, out / groups, kH, kW)
            slice_param(m, "weight", keep, 0)
            m.in_channels = len(keep)
        elif slot.role == "attr_c":
            m.c = len(keep)
        else:
            raise AssertionError(slot.role)


def record(graph: ChannelGraph, plan: Plan, previous: dict | None = None) -> dict[str, list[int]]:
    """Return the widths to store in the model YAML: ``{group name: [kept, full width]}``.

    Args:
        graph (ChannelGraph): The analysed network (already pruned once if ``previous`` is given).
        plan (Plan): Kept indices per group.
        previous (dict, optional): The record of an earlier pruning of the same network (its full widths are kept).

    Returns:
        (dict[str, list[int]]): The record, for every group narrower than its full width.
    """
    out = {k: list(v) for k, v in (previous or {}).items()}
    for gid, keep in plan.items():
        g = graph.groups[gid]
        full = out.get(g.name, [g.size, g.size])[1]
        out[g.name] = [len(keep), full]
    return out


def from_record(graph: ChannelGraph, rec: dict) -> Plan:
    """Return the plan that narrows a freshly built (full-width) network to recorded widths: first channels kept.

    A group whose full width differs from the record (e.g. the head rebuilt for another number of classes) is built
    at its new width: its weights cannot be transferred anyway.

    Args:
        graph (ChannelGraph): The analysed full-width network.
        rec (dict): ``{group name: [kept, full width]}``.

    Returns:
        (Plan): Kept indices per group.

    Raises:
        SlimError: The record names a group this network does not have.
    """
    groups = graph.by_name()
    plan = {}
    for name, (kept, full) in rec.items():
        g = groups.get(name)
        if g is None:
            raise SlimError(
                f"the model YAML records a pruned width for '{name}', which this network does not have; the "
                "'slim' entry belongs to another architecture (remove it to build the full-width model)"
            )
        if g.size == full and int(kept) < g.size:
            plan[g.gid] = torch.arange(int(kept))
    return plan
