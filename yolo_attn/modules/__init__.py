"""The attention blocks: one file each, registered where defined (``@BLOCKS.register``).

Every module in this package is imported here, so a new block file needs no other edit. The block classes are
exported under their registered names: ``from yolo_attn.modules import NAM``.
"""

from __future__ import annotations

import importlib
import pkgutil

from ..registry import BLOCKS
from .base import Arg, AttentionGate

for _info in pkgutil.iter_modules(__path__):
    if not _info.name.startswith("_") and _info.name != "base":
        importlib.import_module(f"{__name__}.{_info.name}")

globals().update(BLOCKS.items())
__all__ = ["Arg", "AttentionGate", *BLOCKS.names()]
