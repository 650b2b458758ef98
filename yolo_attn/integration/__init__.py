"""Everything that touches Ultralytics internals lives here, behind one guarded, idempotent ``register()``."""

from __future__ import annotations

import threading

from ..registry import BLOCKS, Registry
from .compat import SUPPORTED, UnsupportedUltralyticsError, check_ultralytics
from .export import DeformConvExportError
from .files import DATA_NAME, cfg_dir, find_config, list_configs
from .parser import UnknownModuleError
from .transfer import TransferReport, WeightTransferError, transfer_weights

__all__ = [
    "DATA_NAME",
    "DeformConvExportError",
    "SUPPORTED",
    "TransferReport",
    "UnknownModuleError",
    "UnsupportedUltralyticsError",
    "WeightTransferError",
    "cfg_dir",
    "find_config",
    "list_configs",
    "register",
    "transfer_weights",
]

_lock = threading.Lock()


def register(registry: Registry = BLOCKS) -> None:
    """Register the blocks with Ultralytics' parser, file lookup, trainer callbacks, safe loading, ONNX export and
    pretrained-weight transfer.

    Idempotent and thread-safe: call it again after adding blocks to the registry. ``import yolo_attn`` calls it.

    Args:
        registry (Registry): The blocks to register.

    Raises:
        UnsupportedUltralyticsError: The installed Ultralytics is outside the supported range or its parser changed.
    """
    import ultralytics
    import ultralytics.data.utils as data_utils
    import ultralytics.engine.exporter as exporter
    import ultralytics.nn.tasks as tasks
    import ultralytics.utils.checks as checks
    import ultralytics.utils.dist as dist
    from ultralytics.utils.callbacks import base as callbacks_base

    from ..training.callbacks import callbacks
    from .checkpoints import install_safe_load
    from .ddp import install_ddp
    from .export import install_export
    from .files import install_file_lookup
    from .fuse import install_fuse
    from .parser import install_parser
    from .slim import install_slim
    from .trainer import install_callbacks
    from .transfer import install_transfer

    with _lock:
        check_ultralytics(tasks, ultralytics.__version__, dist)
        install_parser(tasks, registry)
        install_file_lookup(checks, data_utils)
        install_callbacks(callbacks_base.default_callbacks, callbacks)
        install_safe_load(tasks, registry)
        install_export(exporter.Exporter)
        install_ddp(dist, registry)
        install_fuse(tasks, registry)
        install_transfer(tasks, registry)
        install_slim(tasks)
