"""Pretrained-weight transfer: load a stock checkpoint into an attention variant by position in the stock YAML.

Inserting attention rows shifts every later layer index, so Ultralytics' name-based ``BaseModel.load`` (state-dict
keys ``model.<index>.*``) would transfer only the layers before the first inserted row. Here the layers of both
models are matched by their position among the non-attention rows ("stock positions"): per position the layer
types, the tensor names and shapes and the wiring (which stock positions each layer reads) must agree, and any
mismatch stops the transfer before a single tensor is loaded. Attention rows of the checkpoint are mapped too when
one of the same class sits at the same place in the target. The mapped weights are then handed to Ultralytics' own
``load`` as a re-indexed view of the source model, so its head handling (class-count changes, first-layer channel
changes, class names) still applies.
"""

from __future__ import annotations

import copy
import types
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from ..registry import BLOCKS, Registry
from ..rows import StockLayout
from ._patch import patch

__all__ = [
    "TransferReport",
    "WeightTransferError",
    "install_transfer",
    "is_attention",
    "map_layers",
    "transfer_weights",
]

_FIRST_CONV = "conv.weight"  # layer 0's filters: Ultralytics' load adapts them to the input channel count


class WeightTransferError(ValueError):
    """A checkpoint's layers cannot be mapped onto the target model (different base model, scale or wiring)."""


@dataclass
class TransferReport:
    """What a transfer loaded and what it left alone.

    Attributes:
        layer_map (dict[int, int]): Target layer index -> source layer index, for every mapped layer.
        transferred (int): Target tensors loaded from the source.
        target_total (int): Tensors in the target's state dict.
        source_total (int): Tensors in the source's state dict.
        not_transferred (list[str]): Target state-dict keys that kept their initial values.
        unused (list[str]): Source state-dict keys that were not loaded.
        attention_rows (list[int]): Target attention rows that received no weights (they keep their initialisation).
    """

    layer_map: dict[int, int]
    transferred: int
    target_total: int
    source_total: int
    not_transferred: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    attention_rows: list[int] = field(default_factory=list)

    @property
    def _own(self) -> int:
        """Return how many target tensors belong to the attention rows that received no weights."""
        prefixes = tuple(f"model.{i}." for i in self.attention_rows)
        return sum(k.startswith(prefixes) for k in self.not_transferred) if prefixes else 0

    def summary(self) -> str:
        """Return the one-line summary, in the style of Ultralytics' own "Transferred a/b items" line."""
        line = f"Transferred {self.transferred}/{self.target_total} items from pretrained weights"
        if any(t != s for t, s in self.layer_map.items()) or self.attention_rows:
            line += f" (yolo-attn: {len(self.layer_map)} layers mapped by position in the stock YAML"
            if self.attention_rows:
                rows = ", ".join(map(str, self.attention_rows))
                line += f"; attention rows {rows} start from their initialisation ({self._own} tensors)"
            line += ")"
        if self.unused:
            line += f"; {len(self.unused)}/{self.source_total} checkpoint tensors unused"
        return line


def is_attention(layer: nn.Module, registry: Registry = BLOCKS) -> bool:
    """Return whether a model row is a kit attention row (one block, or a repeated row of blocks).

    Args:
        layer (nn.Module): One entry of ``model.model``.
        registry (Registry): The registered blocks.

    Returns:
        (bool): True for an attention row.
    """
    classes = registry.classes()
    if isinstance(layer, nn.Sequential) and len(layer):
        return all(isinstance(m, classes) for m in layer)  # a row with repeats n > 1
    return isinstance(layer, classes)


def _rows(model: nn.Module) -> nn.Sequential | None:
    """Return a model's row sequence (``model.model`` built by ``parse_model``), or None for other models."""
    rows = getattr(model, "model", None)
    if isinstance(rows, nn.Sequential) and len(rows) and all(hasattr(m, "f") for m in rows):
        return rows
    return None


def _name(model: nn.Module) -> str:
    """Return a readable name for a model: its checkpoint path, else its YAML file."""
    yaml = getattr(model, "yaml", None)
    return str(getattr(model, "pt_path", None) or (yaml.get("yaml_file") if isinstance(yaml, dict) else None) or
               type(model).__name__)


def _layout(rows: nn.Sequential, registry: Registry) -> StockLayout:
    """Split a model's rows into stock and attention rows, wired in stock positions (see ``yolo_attn.rows``)."""
    return StockLayout([layer.f for layer in rows], [is_attention(layer, registry) for layer in rows])


def _float_source(source: nn.Module) -> nn.Module:
    """Return ``source``, or a float32 copy when it holds other floating tensors.

    Ultralytics' ``load`` casts the model it reads from with ``.float()``, in place; a half-precision checkpoint
    model handed to ``transfer_weights`` must come out unchanged, so the cast happens on a copy.
    """
    tensors = [*source.parameters(), *source.buffers()]
    if all(t.dtype == torch.float32 or not t.is_floating_point() for t in tensors):
        return source
    return copy.deepcopy(source).float()


def _shape_mismatch(target: nn.Module, source: nn.Module, first: bool = False, head: bool = False) -> str | None:
    """Describe the first tensor-name or shape difference between two layers, or return None when they agree.

    Shapes that legitimately differ between a checkpoint and its fine-tuning target are not compared: the head's
    (class or keypoint counts; Ultralytics' ``load`` rebuilds a Detect class branch at the source width and skips
    what still differs) and the first layer's input channels (filled from the source's filters). The scale and
    base model are fixed by the layers before the head, which must agree exactly.
    """
    tsd, ssd = target.state_dict(), source.state_dict()
    if tsd.keys() != ssd.keys():
        only_t, only_s = sorted(tsd.keys() - ssd.keys()), sorted(ssd.keys() - tsd.keys())
        return f"tensors differ: only in the target {only_t[:4]}, only in the checkpoint {only_s[:4]}"
    if head:
        return None
    for key, t in tsd.items():
        s = ssd[key]
        if first and key == _FIRST_CONV and t.dim() == s.dim() == 4:
            if t.shape[0] == s.shape[0] and t.shape[2:] == s.shape[2:]:
                continue
        if t.shape != s.shape:
            return f"tensor {key} has shape {tuple(t.shape)} in the target and {tuple(s.shape)} in the checkpoint"
    return None


def _same_blocks(target: nn.Module, source: nn.Module) -> bool:
    """Return whether two attention rows hold the same block classes with the same tensors."""
    t, s = (list(m) if isinstance(m, nn.Sequential) else [m] for m in (target, source))
    return [type(m) for m in t] == [type(m) for m in s] and _shape_mismatch(target, source) is None


def _scale(model: nn.Module) -> str | None:
    """Return the scale letter a model was built at (``yaml['scale']``), if known."""
    yaml = getattr(model, "yaml", None)
    return yaml.get("scale") if isinstance(yaml, dict) else None


def _mismatch_error(source: nn.Module, target: nn.Module, where: str, problem: str) -> WeightTransferError:
    """Build the error for a layer that does not line up, naming both models, the layer and the likely fix."""
    hint = "The checkpoint is a different base model or scale than the target"
    ts, ss = _scale(target), _scale(source)
    if ts and ss and ts != ss:
        hint = f"The checkpoint is scale '{ss}' and the target scale '{ts}'"
    if getattr(source, "is_fused", lambda: False)():
        hint = "The checkpoint is fused for inference (Conv+BN merged); load the unfused training checkpoint"
    return WeightTransferError(
        f"Cannot transfer weights from '{_name(source)}' into '{_name(target)}' by position in the stock YAML: "
        f"{where}: {problem}. {hint}; use a checkpoint of the same base model and scale as the target (e.g. "
        f"yolov8n.pt for yolov8n-se.yaml, yolov8s.pt for yolov8s-se.yaml). Nothing was loaded."
    )


def map_layers(source: nn.Module, target: nn.Module, registry: Registry = BLOCKS) -> dict[int, int]:
    """Map the target's rows onto the source's by position in the stock YAML.

    Every stock (non-attention) row of the target gets the source row at the same stock position; an attention row
    gets the source's attention row at the same place (after the same stock row, same order) when it is of the same
    class with the same tensor shapes, and nothing otherwise. Pure: neither model is changed.

    Args:
        source (nn.Module): The pretrained model (an Ultralytics ``BaseModel``).
        target (nn.Module): The model to load into.
        registry (Registry): The registered blocks (the attention rows).

    Returns:
        (dict[int, int]): Target row index -> source row index, in target order.

    Raises:
        WeightTransferError: A model has no Ultralytics row sequence, or the stock rows differ in number, type,
            tensor names or shapes, or wiring.
    """
    s_rows, t_rows = _rows(source), _rows(target)
    if s_rows is None or t_rows is None:
        which = "checkpoint" if s_rows is None else "target"
        raise WeightTransferError(f"The {which} '{_name(source if s_rows is None else target)}' is not a model "
                                  "built from an Ultralytics model YAML (no model.model rows); nothing was loaded.")
    src, tgt = _layout(s_rows, registry), _layout(t_rows, registry)
    plan: dict[int, int] = {}
    for p, (ti, si) in enumerate(zip(tgt.stock, src.stock)):
        where = f"stock layer {p} (target row {ti}, checkpoint row {si})"
        tl, sl = t_rows[ti], s_rows[si]
        if type(tl) is not type(sl):
            raise _mismatch_error(source, target, where, f"{type(tl).__name__} in the target, "
                                                         f"{type(sl).__name__} in the checkpoint")
        problem = _shape_mismatch(tl, sl, first=p == 0, head=p == len(tgt.stock) - 1 == len(src.stock) - 1)
        if problem:
            raise _mismatch_error(source, target, f"{where}, {type(tl).__name__}", problem)
        if tgt.wiring(ti) != src.wiring(si):
            raise _mismatch_error(source, target, f"{where}, {type(tl).__name__}",
                                  f"reads stock layers {tgt.wiring(ti)} in the target, {src.wiring(si)} in the "
                                  "checkpoint")
        plan[ti] = si
    if len(tgt.stock) != len(src.stock):
        raise _mismatch_error(source, target, "layer count",
                              f"the target has {len(tgt.stock)} stock layers, the checkpoint {len(src.stock)}")
    by_place = {place: i for i, place in src.inserted.items()}
    for ti, place in tgt.inserted.items():
        si = by_place.get(place)
        if si is not None and _same_blocks(t_rows[ti], s_rows[si]):
            plan[ti] = si  # the checkpoint has the same block at the same place: its weights carry over
    return dict(sorted(plan.items()))


def _reindexed(source: nn.Module, plan: dict[int, int], n_rows: int) -> nn.Module:
    """Return a view of ``source`` whose row ``t`` is source row ``plan[t]`` (an empty module where unmapped).

    The view shares the source's layers and attributes (names, stride, pt_path), so Ultralytics' ``load`` sees the
    source model with the target's row numbering.
    """
    rows = _rows(source)
    seq = nn.Sequential(OrderedDict((str(t), rows[plan[t]] if t in plan else nn.Identity()) for t in range(n_rows)))
    view = object.__new__(type(source))
    view.__dict__.update(source.__dict__)
    view.__dict__["_modules"] = {**source._modules, "model": seq}
    return view


def _report(target: nn.Module, source: nn.Module, plan: dict[int, int], registry: Registry) -> TransferReport:
    """Compare the loaded target with the source tensor by tensor."""
    tsd, ssd = target.state_dict(), source.state_dict()  # keys and shapes only: no cast of the caller's model
    loaded, used = [], set()
    for t, s in plan.items():
        for key in _rows(target)[t].state_dict():
            tk, sk = f"model.{t}.{key}", f"model.{s}.{key}"
            adapted = t == 0 and key == _FIRST_CONV  # Ultralytics copies the overlapping input channels
            if sk in ssd and (tsd[tk].shape == ssd[sk].shape or adapted):
                loaded.append(tk)
                used.add(sk)
    done = set(loaded)
    layout = _layout(_rows(target), registry)
    return TransferReport(
        layer_map=dict(plan),
        transferred=len(loaded),
        target_total=len(tsd),
        source_total=len(ssd),
        not_transferred=[k for k in tsd if k not in done],
        unused=[k for k in ssd if k not in used],
        attention_rows=[i for i in layout.inserted if i not in plan],
    )


def _source_module(weights: object) -> nn.Module | None:
    """Return the model a ``load`` argument stands for: a checkpoint dict's ``ema`` model first, as Ultralytics does."""
    if isinstance(weights, dict):
        weights = weights.get("ema") or weights.get("model")
    return weights if isinstance(weights, nn.Module) else None


def _placeholder_names(model: nn.Module) -> bool:
    """Return whether a model still has the YAML's placeholder class names ``{0: '0', 1: '1', ...}``."""
    names = getattr(model, "names", None)
    return isinstance(names, dict) and names == {i: str(i) for i in range(len(names))}


def _load_mapped(target: nn.Module, source: nn.Module, load: Callable, verbose: bool,
                 registry: Registry) -> TransferReport:
    """Map, load through Ultralytics' ``load`` (unwrapped) on the re-indexed view, report and log."""
    from ultralytics.utils import LOGGER

    plan = map_layers(source, target, registry)  # raises before anything is loaded
    load(target, _reindexed(_float_source(source), plan, len(_rows(target))), verbose=False)
    report = _report(target, source, plan, registry)
    attention = tuple(f"model.{i}." for i in _layout(_rows(target), registry).inserted)
    names = getattr(source, "names", None)
    stock_done = all(k.startswith(attention) for k in report.not_transferred)  # only attention rows left at init
    if stock_done and isinstance(names, dict) and _placeholder_names(target):
        target.names = dict(names)  # every stock tensor landed: take the class names, as a full load does
    if verbose:
        LOGGER.info(report.summary())
    return report


def _needs_mapping(target: nn.Module, source: nn.Module | None, registry: Registry) -> bool:
    """Return whether a ``load`` involves kit rows on either side (plain Ultralytics models keep the stock load)."""
    if source is None or _rows(target) is None or _rows(source) is None:
        return False
    return any(is_attention(m, registry) for m in (*_rows(target), *_rows(source)))


def transfer_weights(target: nn.Module, source: object, verbose: bool = True,
                     registry: Registry = BLOCKS) -> TransferReport:
    """Load a checkpoint into a model by position in the stock YAML and report what transferred.

    ``YOLO("yolov8n-se.yaml").load("yolov8n.pt")`` and training with ``pretrained=yolov8n.pt`` do the same once the
    kit is registered; this function also returns the report.

    Args:
        target (nn.Module): The model to load into: an Ultralytics ``BaseModel`` or a ``YOLO`` object.
        source (str | Path | dict | nn.Module): A ``.pt`` path, a checkpoint dict (its ``ema`` model first, else
            ``model``), a model or a ``YOLO`` object.
        verbose (bool): Log the one-line summary through Ultralytics' LOGGER.
        registry (Registry): The registered blocks (the attention rows).

    Returns:
        (TransferReport): Counts and the lists of non-transferred target and unused source tensors.

    Raises:
        WeightTransferError: The checkpoint's layers do not line up with the target's (nothing is loaded).
    """
    from ultralytics.nn.tasks import BaseModel, load_checkpoint

    target = getattr(target, "model", target) if not isinstance(target, BaseModel) else target
    if isinstance(source, (str, Path)):
        source, _ = load_checkpoint(source)
    elif not isinstance(source, (dict, BaseModel)) and isinstance(getattr(source, "model", None), BaseModel):
        source = source.model  # a YOLO object
    module = _source_module(source)
    if not isinstance(target, BaseModel) or module is None:
        raise TypeError(f"transfer_weights expects an Ultralytics model (or YOLO object) and a checkpoint path, dict "
                        f"or model; got {type(target).__name__} and {type(source).__name__}")
    load = getattr(BaseModel.load, "__wrapped__", BaseModel.load)
    return _load_mapped(target, module, load, verbose, registry)


def install_transfer(tasks: types.ModuleType, registry: Registry = BLOCKS) -> None:
    """Wrap ``tasks.BaseModel.load`` once so loads that involve kit rows are mapped by stock-YAML position.

    ``YOLO(cfg).load(pt)`` and the trainer's ``pretrained=`` (``get_model`` -> ``model.load(weights)``) both end in
    ``BaseModel.load``. Loads between plain Ultralytics models go to the original unchanged.

    Args:
        tasks (types.ModuleType): ``ultralytics.nn.tasks``.
        registry (Registry): The registered blocks.
    """

    def hooked(original: Callable) -> Callable:
        def load(self, weights, verbose=True):
            source = _source_module(weights)
            if not _needs_mapping(self, source, registry):
                return original(self, weights, verbose)
            _load_mapped(self, source, original, verbose, registry)

        return load

    patch(tasks.BaseModel, "load", hooked)
