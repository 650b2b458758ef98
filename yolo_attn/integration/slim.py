"""Keep a pruned network pruned when Ultralytics rebuilds a model from its YAML.

Ultralytics' trainer never trains the loaded module: ``Model.train()`` and ``yolo train model=pruned.pt`` call
``get_model(cfg=model.yaml, weights=model)``, which builds the network from the YAML at full width and then
``load()``\\ s the weights, silently dropping every tensor whose shape differs. Resume and DDP workers rebuild the
same way. A pruned model's YAML dict records its kept widths (``slim: {group: [kept, full width]}``); the model
constructor is wrapped so that right after the layers are built they are narrowed to those widths (the first channels
of each group), and every later ``load()`` finds matching shapes.
"""

from __future__ import annotations

import types
from collections.abc import Callable

__all__ = ["install_slim", "restore_widths"]


def restore_widths(model) -> None:
    """Narrow a freshly built model to the widths its YAML records (no-op without a record).

    Args:
        model (BaseModel): An Ultralytics model right after its layers were built.
    """
    from ..slim import SLIM_KEY, analyse, apply_plan, from_record

    rec = (getattr(model, "yaml", None) or {}).get(SLIM_KEY)
    if not rec or not hasattr(model, "model"):
        return
    graph = analyse(model.model, ch=int(model.yaml.get("channels", 3)))
    apply_plan(graph, from_record(graph, rec))


def _after(original: Callable) -> Callable:
    """Wrap a model-building function (first argument: the model) to restore recorded widths when it returns."""

    def build(model, *args, **kwargs):
        result = original(model, *args, **kwargs)
        restore_widths(model)
        return result

    return build


def install_slim(tasks: types.ModuleType) -> None:
    """Wrap where Ultralytics builds a model's layers from its YAML (idempotent).

    Detection-family models (detect, segment, pose, obb) build them in ``_initialize_yolo_model`` (before strides
    and bias initialisation, which then see the pruned network); older Ultralytics builds them in
    ``DetectionModel.__init__``. Classification models build them in ``ClassificationModel._from_yaml``.

    Args:
        tasks (types.ModuleType): ``ultralytics.nn.tasks``.
    """
    from ._patch import patch

    if hasattr(tasks, "_initialize_yolo_model"):
        patch(tasks, "_initialize_yolo_model", _after)
    else:
        patch(tasks.DetectionModel, "__init__", _after)
    patch(tasks.ClassificationModel, "_from_yaml", _after)
