"""Checkpoint integration: let ``ULTRALYTICS_SAFE_LOAD=1`` (torch's weights-only unpickler) load kit checkpoints.

Restricted loading only accepts classes on Ultralytics' allow-list, which it builds lazily from its own and torch's
modules; kit blocks would be refused as "types outside the supported checkpoint format". The list builder is wrapped
so the kit's module classes join it, whenever it is built (and added at once if it already was).
"""

from __future__ import annotations

import sys
import types

import torch.nn as nn

from ..modules.base import AttentionGate
from ..registry import Registry

__all__ = ["install_safe_load", "kit_module_classes"]


def kit_module_classes(registry: Registry) -> dict[str, type[nn.Module]]:
    """Return ``{"module.QualName": class}`` for every ``nn.Module`` class a kit checkpoint can contain.

    That is the registered block classes, every ``nn.Module`` class defined in the files that define them (helpers
    such as a block's own normalisation layer), and :class:`AttentionGate`. User blocks are covered the same way.

    Args:
        registry (Registry): Registered blocks (user blocks included).

    Returns:
        (dict[str, type[nn.Module]]): The classes by their pickled names.
    """
    classes = {AttentionGate, *registry.classes()}
    for name in {c.__module__ for c in registry.classes()}:
        mod = sys.modules.get(name)
        if mod is not None:
            defined = (c for c in vars(mod).values() if isinstance(c, type) and c.__module__ == name)
            classes |= {c for c in defined if issubclass(c, nn.Module)}
    return {f"{c.__module__}.{c.__qualname__}": c for c in classes}


def install_safe_load(tasks: types.ModuleType, registry: Registry) -> None:
    """Add the kit's classes to Ultralytics' restricted-loading allow-list (idempotent; no-op without one).

    Args:
        tasks (types.ModuleType): ``ultralytics.nn.tasks``.
        registry (Registry): Registered blocks.
    """
    safe = getattr(tasks, "_SafeLoad", None)
    if safe is None or not hasattr(safe, "_build"):
        return  # this Ultralytics has no restricted loading
    entries = kit_module_classes(registry)
    original = safe._build.__func__
    if getattr(original, "_yolo_attn", False):
        original = original.__wrapped__

    def _build(cls):
        allow = original(cls)
        allow.update(kit_module_classes(registry))  # at build time: blocks registered later are included
        return allow

    _build._yolo_attn, _build.__wrapped__ = True, original
    with safe._lock:
        safe._build = classmethod(_build)
        if safe._registry is not None:
            safe._registry.update(entries)
