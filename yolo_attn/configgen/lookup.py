"""Base lookup: find a model YAML by name (stock Ultralytics, kit configs) or path, and load it checked."""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..rows import inputs

__all__ = ["Base", "load_base", "read_yaml", "resolve_base"]

_SCALE_IN_NAME = re.compile(r"(\d+)([nslmx])(.+)?$")  # Ultralytics' rule: yolov8n-seg.yaml -> yolov8-seg.yaml
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: many small reads per config


def read_yaml(text: str) -> object:
    """Parse YAML text safely (the same result with or without libyaml).

    Args:
        text (str): YAML text.

    Returns:
        (object): The parsed value.
    """
    return yaml.load(text, Loader=_LOADER)


@dataclass
class Base:
    """A loaded base YAML.

    Attributes:
        cfg (dict): The parsed model dict.
        text (str): The file's text (comments and row layout are kept in the output).
        name (str): The name to record (as the user gave it).
        path (Path): The file.
    """

    cfg: dict
    text: str
    name: str
    path: Path

    @property
    def rows(self) -> list[list]:
        """Return backbone + head rows."""
        return self.cfg["backbone"] + self.cfg["head"]


def _stock_root() -> Path:
    """Return Ultralytics' ``cfg/models`` directory without importing Ultralytics."""
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.origin:
        raise ModuleNotFoundError("Ultralytics is not installed: pip install 'ultralytics>=8.4.0,<8.5'")
    return Path(spec.origin).parent / "cfg" / "models"


def _kit_cfg_dir() -> Path | None:
    """Return the kit's ready-made config directory, or None when it is missing."""
    from ..integration.files import cfg_dir

    try:
        return cfg_dir()
    except FileNotFoundError:
        return None


def _known_names() -> list[str]:
    """Return every stock and kit model YAML name, for did-you-mean hints."""
    kit = _kit_cfg_dir()
    paths = list(_stock_root().rglob("*.yaml")) + (list(kit.glob("*.yaml")) if kit else [])
    return sorted({p.name for p in paths})


def resolve_base(base: str | os.PathLike) -> Path:
    """Return the model YAML a base name or path refers to.

    Args:
        base (str | os.PathLike): An existing file, or a name of a stock Ultralytics model YAML (``yolov8-seg.yaml``,
            ``yolo11.yaml``) or of a kit config, with or without a scale letter (``yolov8n-seg.yaml``).

    Returns:
        (Path): The YAML file.

    Raises:
        FileNotFoundError: Nothing matches; the message lists the closest names.
    """
    path = Path(base)
    if path.is_file():
        return path
    name = path.name
    if str(base) == name:  # a bare name: the kit's configs, then Ultralytics' cfg/models tree
        unscaled = _SCALE_IN_NAME.sub(r"\1\3", name)
        kit = _kit_cfg_dir()
        for candidate in dict.fromkeys((name, unscaled)):
            if kit is not None and (kit / candidate).is_file():
                return kit / candidate
            found = sorted(_stock_root().rglob(candidate))
            if found:
                return found[0]
    close = difflib.get_close_matches(name, _known_names(), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise FileNotFoundError(
        f"base '{base}' not found: it is not a file, a stock Ultralytics model YAML (ultralytics/cfg/models) or a "
        f"yolo-attn config.{hint} Examples: base=yolov8.yaml, base=yolo11-seg.yaml, base=path/to/model.yaml."
    )


def load_base(base: str | os.PathLike) -> Base:
    """Resolve and load ``base``, checking it is a model YAML with backbone and head lists and valid references.

    Args:
        base (str | os.PathLike): Model YAML name or path (see ``resolve_base``).

    Returns:
        (Base): The loaded base.

    Raises:
        FileNotFoundError: ``base`` not found.
        ValueError: Not a model YAML, a malformed row, or a ``from`` that does not refer to an earlier row.
    """
    path = resolve_base(base)
    text = path.read_text(encoding="utf-8")
    cfg = read_yaml(text)
    if not isinstance(cfg, dict) or not all(isinstance(cfg.get(k), list) and cfg[k] for k in ("backbone", "head")):
        raise ValueError(f"base '{base}' ({path}) is not a model YAML: it needs non-empty 'backbone' and 'head' lists")
    for i, row in enumerate(cfg["backbone"] + cfg["head"]):
        if not (isinstance(row, list) and len(row) == 4 and isinstance(row[2], str)):
            raise ValueError(f"base '{base}' row {i} must be [from, repeats, module, args], got {row!r}")
        try:
            inputs(i, row[0])
        except ValueError as e:
            raise ValueError(f"base '{base}' {e}") from None
    return Base(cfg, text, str(base), path)
