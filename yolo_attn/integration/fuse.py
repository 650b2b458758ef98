"""Fuse integration: ``model.fuse()`` also folds kit blocks that can be folded (those whose ``can_fuse()`` is true).

Ultralytics folds Conv+BN pairs in ``BaseModel.fuse()``, which every inference path calls: ``val`` and ``predict``
through ``AutoBackend(fuse=True)``, ``export`` on its deep copy of the model, ``YOLO.fuse()``, the TensorBoard graph
and ``benchmark``. Its loop only knows Ultralytics' own modules, so the wrapper installed here first calls ``fuse()``
on every module whose class is a registered kit block that declares a fold (``AttentionGate.can_fuse()``; plain
``nn.Module`` blocks registered by users count when they define ``fuse``), then runs Ultralytics' fusing (whose
closing model summary and FLOPs probe then see the fused blocks). Block ``fuse()`` methods are idempotent, and they
run even when Ultralytics finds nothing left to fuse (a model fused, trained, fused again).
"""

from __future__ import annotations

import types
from collections.abc import Callable

import torch.nn as nn

from ..registry import BLOCKS, Registry
from ._patch import patch

__all__ = ["fuse_blocks", "install_fuse"]


def _can_fuse(cls: type[nn.Module]) -> bool:
    """Return whether a block class has something to fold: its declared ``can_fuse()``, else a ``fuse`` method."""
    can = getattr(cls, "can_fuse", None)
    return bool(can()) if callable(can) else callable(getattr(cls, "fuse", None))


def fuse_blocks(model: nn.Module, registry: Registry = BLOCKS) -> int:
    """Call ``fuse()`` on every registered kit block in ``model`` that has one.

    Args:
        model (nn.Module): Any model.
        registry (Registry): The kit blocks.

    Returns:
        (int): How many blocks were fused.
    """
    kinds = tuple(cls for cls in registry.classes() if _can_fuse(cls))
    blocks = [m for m in model.modules() if kinds and isinstance(m, kinds)]
    for m in blocks:
        m.fuse()
    return len(blocks)


def install_fuse(tasks: types.ModuleType, registry: Registry = BLOCKS) -> None:
    """Wrap ``tasks.BaseModel.fuse`` so that it also fuses kit blocks (installing twice wraps once).

    Args:
        tasks (types.ModuleType): ``ultralytics.nn.tasks``.
        registry (Registry): The kit blocks (read at fuse time, so blocks registered later are included).
    """

    def hooked(original: Callable) -> Callable:
        def fuse(self, *args, **kwargs):
            fuse_blocks(self, registry)  # first, so that the summary Ultralytics prints describes the fused model
            return original(self, *args, **kwargs)

        return fuse

    patch(tasks.BaseModel, "fuse", hooked)
