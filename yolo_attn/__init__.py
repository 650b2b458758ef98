"""yolo-attn: attention blocks as first-class citizens of Ultralytics YOLO model YAMLs.

Importing the package has one side effect: it registers the blocks with Ultralytics' model-YAML parser (and lets
the ready-made configs and the built-in dataset be named by file name alone). Set ``YOLO_ATTN_AUTOREGISTER=0`` to
import without registering, then call ``yolo_attn.register()`` yourself.

The installed kit also imports itself when Ultralytics' model parser is first imported, so the stock ``yolo``
command and plain Ultralytics code take kit YAMLs: a start-up hook (``yolo_attn_autoload``, installed as a .pth
file) that imports nothing until then. ``YOLO_ATTN_AUTOLOAD=0`` switches it off.
"""

from __future__ import annotations

import os

from . import modules  # first: importing the block files registers them
from .integration import (
    TransferReport,
    UnknownModuleError,
    UnsupportedUltralyticsError,
    WeightTransferError,
    cfg_dir,
    find_config,
    list_configs,
    register,
    transfer_weights,
)
from .bench import run_bench  # cheap: Ultralytics and matplotlib are imported when it runs
from .configgen import make_config
from .modules import Arg, AttentionGate
from .registry import BLOCKS, Registry
from .slim import prune
from .training import format_saliency, nam_saliency, set_nam_penalty

__version__ = "0.1.0"
globals().update(BLOCKS.items())  # yolo_attn.NAM etc.: every kit block under its registered name
__all__ = [
    *BLOCKS.names(),
    "Arg",
    "AttentionGate",
    "BLOCKS",
    "Registry",
    "TransferReport",
    "UnknownModuleError",
    "UnsupportedUltralyticsError",
    "WeightTransferError",
    "cfg_dir",
    "find_config",
    "format_saliency",
    "list_configs",
    "make_config",
    "nam_saliency",
    "prune",
    "register",
    "run_bench",
    "set_nam_penalty",
    "transfer_weights",
]

if os.getenv("YOLO_ATTN_AUTOREGISTER", "1") != "0":
    register()
