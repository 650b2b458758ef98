"""Everything that touches Ultralytics internals lives here, behind one guarded, idempotent ``register()``."""

from __future__ import annotations

import threading

from ..registry import BLOCKS, Registry
from .compat import SUPPORTED, UnsupportedUltralyticsError, check_ultralytics
from .export import DeformConvExportError
from .files import DATA_NAME, cfg_dir, find_config, list_configs
from .parser import UnknownModuleError

__all__ = [
    "DATA_NAME",
    "DeformConvExportError",
    "SUPPORTED",
    "UnknownModuleError",
    "UnsupportedUltralyticsError",
    "cfg_dir",
    "find_config",
    "list_configs",
    "register",
]

_lock = threading.Lock()


def register(registry: Registry = BLOCKS) -> None:
    """Register the blocks with Ultralytics' parser, file lookup, trainer callbacks, safe loading and ONNX export.

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
    from ultralytics.utils.callbacks import base as callbacks_base

    from ..training.callbacks import callbacks
    from .checkpoints import install_safe_load
    from .export import install_export
    from .files import install_file_lookup
    from .parser import install_parser
    from .trainer import install_callbacks

    with _lock:
        check_ultralytics(tasks, ultralytics.__version__)
        install_parser(tasks, registry)
        install_file_lookup(checks, data_utils)
        install_callbacks(callbacks_base.default_callbacks, callbacks)
        install_safe_load(tasks, registry)
        install_export(exporter.Exporter)
