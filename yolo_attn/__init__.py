"""yolo-attn: NAM, SimAM, SE and DAS attention blocks as first-class citizens of Ultralytics YOLO model YAMLs.

Importing the package has one side effect: it registers the blocks with Ultralytics' model-YAML parser (and lets
the ready-made configs and the built-in dataset be named by file name alone). Set ``YOLO_ATTN_AUTOREGISTER=0`` to
import without registering, then call ``yolo_attn.register()`` yourself.
"""

from __future__ import annotations

import os

from .integration import (
    UnknownModuleError,
    UnsupportedUltralyticsError,
    cfg_dir,
    find_config,
    list_configs,
    register,
)
from .modules import DAS, NAM, SE, SimAM
from .registry import BLOCKS, Registry
from .training import format_saliency, nam_saliency, set_nam_penalty

__version__ = "0.1.0"
__all__ = [
    "BLOCKS",
    "DAS",
    "NAM",
    "SE",
    "Registry",
    "SimAM",
    "UnknownModuleError",
    "UnsupportedUltralyticsError",
    "cfg_dir",
    "find_config",
    "format_saliency",
    "list_configs",
    "nam_saliency",
    "register",
    "set_nam_penalty",
]

if os.getenv("YOLO_ATTN_AUTOREGISTER", "1") != "0":
    register()
