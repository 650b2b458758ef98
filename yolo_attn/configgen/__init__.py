"""Config generator: a model YAML plus attention rows, with every ``from`` index rewritten for the inserted rows.

    make_config("yolov8-seg.yaml", block, at="backbone", out=f"yolov8-seg-{block.lower()}.yaml")  # block: a name
    yolo-attn make-config base=yolov8-seg.yaml block=NAME at=backbone out=yolov8-seg-name.yaml   # yolo-attn list

A row inserted after layer ``k`` is ``[-1, 1, BLOCK, args]``: it refines ``k``'s output, so every later row that read
``k`` (through ``-1``, a negative offset, an absolute index, a Concat list or the head's input list) reads the
attention row instead; every other reference moves with the shifted rows (``yolo_attn.rows``). The generated model
is the base model plus the attention rows and the block's declared config keys (``config_params``), nothing else.
Placements (``at``), all counted in the base YAML's rows: ``backbone`` (the last stage block of each backbone stride
level; YOLOv8 and YOLO11: rows 2, 4, 6, 8), ``neck`` (each layer the output row reads), ``all``, or row indices
(see ``placement``).

One module per step:

- ``lookup``: find and load the base YAML (stock Ultralytics name, kit config, or file);
- ``placement``: which rows the attention rows follow;
- ``blockargs``: the block's registered name, arguments (checked against its declared ``args``) and config keys;
- ``emit``: YAML text in the upstream style (the base's comments and row text kept, indices renumbered);
- ``generate``: ``make_config`` and ``render_config``, tying them together.
"""

from __future__ import annotations

from .blockargs import parse_args
from .generate import make_config, render_config
from .lookup import resolve_base
from .placement import PLACEMENTS, placement_rows

__all__ = ["PLACEMENTS", "make_config", "parse_args", "placement_rows", "render_config", "resolve_base"]
