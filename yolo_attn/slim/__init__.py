"""Structured channel pruning ("slim"): from BN-scale sparsity to a network that is really smaller and faster.

``graph``: channel-dependency analysis over Ultralytics' block vocabulary; ``plan``: which channels to keep and the
slicing (each kit block slices itself through ``prune_channels``); ``prune``: the user-facing ``prune()``. The hook
that keeps a pruned network when Ultralytics rebuilds it from its YAML lives in ``yolo_attn.integration.slim``.
"""

from __future__ import annotations

from .graph import ChannelGraph, Group, SlimError, Slot, analyse
from .plan import apply_plan, from_record, record, removed_bn_channels, select
from .prune import SLIM_KEY, SlimReport, prune, prune_network

__all__ = [
    "SLIM_KEY",
    "ChannelGraph",
    "Group",
    "SlimError",
    "SlimReport",
    "Slot",
    "analyse",
    "apply_plan",
    "from_record",
    "prune",
    "prune_network",
    "record",
    "removed_bn_channels",
    "select",
]
