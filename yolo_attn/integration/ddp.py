"""DDP integration: every worker Ultralytics launches registers the blocks before it rebuilds the model.

Ultralytics runs multi-GPU training by writing a temporary Python file (``ultralytics.utils.dist.generate_ddp_file``)
and starting it in fresh processes with ``torch.distributed.run``. 8.3.x and early 8.4.x write a plain file (``from
ultralytics.models.yolo.detect.train import DetectionTrainer`` plus the overrides) whose workers rebuild the model from
its YAML, where kit rows would be unknown names; later 8.4.x cloudpickle the trainer, which imports the kit only if
something in the pickle refers to it. The file generator is wrapped so that both formats start with a
header that imports the kit and calls ``register()`` (with any user blocks importable by module path), whatever the
file goes on to do. ``generate_ddp_command`` looks the generator up in its module at call time, so wrapping the module
attribute covers the trainer's launch path.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from pathlib import Path

from ..registry import BLOCKS, Registry
from ._patch import patch

__all__ = ["MARKER", "ddp_header", "install_ddp"]

MARKER = "# yolo-attn: register the attention blocks in this DDP worker"


def ddp_header(registry: Registry = BLOCKS) -> str:
    """Return the Python source that makes a fresh interpreter register the kit (and importable user blocks).

    Args:
        registry (Registry): The blocks registered in the launching process.

    Returns:
        (str): Source lines, ending with a newline.
    """
    kit_parent = str(Path(__file__).resolve().parents[2])  # the directory holding the yolo_attn package
    lines = [
        MARKER,
        "import importlib.util as _ya_util, sys as _ya_sys",
        "if _ya_util.find_spec('yolo_attn') is None:  # not installed: the launching process imported it from here",
        f"    _ya_sys.path.append({kit_parent!r})",
        "import yolo_attn as _ya",
    ]
    for name, cls in registry.items():
        module, qualname = cls.__module__, cls.__qualname__
        if module.startswith("yolo_attn.") or module == "__main__" or "<locals>" in qualname:
            continue  # kit blocks register themselves; others cannot be imported by path in the worker
        lines.append(f"_ya.BLOCKS.register(__import__({module!r}, fromlist=['_']).{qualname}, {name!r})")
    lines.append("_ya.register()  # also when YOLO_ATTN_AUTOREGISTER=0: the launching process had registered")
    return "\n".join(lines) + "\n"


def _prefix_file(path: str, header: str) -> None:
    """Put ``header`` at the top of the DDP file ``path`` (once)."""
    file = Path(path)
    text = file.read_text(encoding="utf-8")
    if MARKER not in text:
        file.write_text(header + text, encoding="utf-8")


def _hooked(original: Callable, registry: Registry) -> Callable:
    """Wrap ``generate_ddp_file`` so the file it writes registers the kit first."""

    def generate_ddp_file(trainer, *args, **kwargs):
        path = original(trainer, *args, **kwargs)
        _prefix_file(path, ddp_header(registry))
        return path

    return generate_ddp_file


def install_ddp(dist: types.ModuleType, registry: Registry = BLOCKS) -> None:
    """Wrap ``dist.generate_ddp_file`` once so DDP worker files import and register the kit first (idempotent).

    Args:
        dist (types.ModuleType): ``ultralytics.utils.dist``.
        registry (Registry): The blocks to re-register in the worker (read when each file is written).
    """
    patch(dist, "generate_ddp_file", lambda original: _hooked(original, registry))
