"""Name-only lookup of the kit's files: ``model=yolov8n-se.yaml`` and ``data=digits.yaml`` work from any directory.

Ultralytics resolves a bare YAML name with ``check_file``, which searches only its own package. The hook answers
for the kit's names first, unless a file of that name exists in the working directory (a user's file wins, as with
Ultralytics' own lookup), and otherwise defers to the original function unchanged.
"""

from __future__ import annotations

import os
import types
from collections.abc import Callable
from pathlib import Path

from ._patch import patch

__all__ = ["DATA_NAME", "cfg_dir", "find_config", "install_file_lookup", "list_configs"]

DATA_NAME = "digits.yaml"  # the built-in dataset, generated on first use


def cfg_dir() -> Path:
    """Return the directory of the ready-made model YAMLs (package data in a wheel, ``cfg/`` in a checkout).

    Returns:
        (Path): The directory.
    """
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "cfg", here.parent / "cfg"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"yolo-attn model configs not found next to {here}; reinstall yolo-attn")


def list_configs() -> list[Path]:
    """Return the ready-made model YAMLs, sorted by name."""
    return sorted(cfg_dir().glob("*.yaml"))


def find_config(name: str | os.PathLike) -> Path | None:
    """Return the kit config a bare file name refers to, or None.

    Args:
        name (str | os.PathLike): A file name such as ``"yolov8-nam.yaml"``; paths with directories never match.

    Returns:
        (Path | None): The config path.
    """
    name = str(name)
    if os.sep in name or "/" in name:
        return None
    path = cfg_dir() / name
    return path if path.is_file() else None


def _resolve(name: object) -> str | None:
    """Return the kit file a bare name stands for (generating the built-in dataset on demand), else None."""
    if not isinstance(name, (str, os.PathLike)) or os.path.exists(name):
        return None
    if str(name).endswith(".yaml"):
        from ..data import DATASETS, digits_yaml

        if str(name)[:-5] in DATASETS:  # digits.yaml (DATA_NAME) and the other built-in sets, e.g. digits-hard.yaml
            return str(digits_yaml(dataset=str(name)[:-5]))
    path = find_config(name)
    return str(path) if path else None


def _hooked(original: Callable) -> Callable:
    """Wrap an Ultralytics ``check_file`` so the kit's names resolve first."""

    def check_file(file, *args, **kwargs):
        return _resolve(file) or original(file, *args, **kwargs)

    return check_file


def install_file_lookup(*modules: types.ModuleType) -> None:
    """Hook ``check_file`` in each module that binds it (idempotent).

    Args:
        *modules (types.ModuleType): Modules with a module-level ``check_file`` (``ultralytics.utils.checks`` is the
            one ``check_yaml`` calls; ``ultralytics.data.utils`` resolves dataset YAMLs).
    """
    for module in modules:
        patch(module, "check_file", _hooked)
