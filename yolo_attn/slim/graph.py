"""Channel-dependency analysis of an Ultralytics YOLO network, over Ultralytics' block vocabulary.

A *group* is a set of channels that must be pruned together: the output channels of a convolution (and its
BatchNorm), together with every consumer of those channels, every depthwise convolution and attention block that
passes them through, and every convolution whose output is added to them by a residual sum. A tensor's channels are
a *layout*: a list of groups, concatenated (``Concat`` joins layouts; ``C2f`` splits ``cv1``'s output into two
groups). Every sliceable tensor dimension is a *slot*: a module, a role (which dimension) and the layout it covers.

Groups are scored by the |gamma| of the BatchNorms that produce them. A group is *pinned* (kept whole) when it cannot
be sliced: the input image, a head's final outputs (class, box, mask, keypoint, angle channels), an attention block
without ``prune_channels``, PSA attention, anything the analysis does not know. Unknown layers are never sliced: their
inputs and outputs are pinned, so the pruner never breaks a network it does not understand.

Known blocks: ``Conv``, ``DWConv``, ``C2f``, ``C3k2``, ``C3``, ``C3k``, ``Bottleneck``, ``SPPF``, ``C2PSA`` (its
attention half pinned), ``PSABlock``, ``Concat``, ``Upsample``, ``Detect``, ``Segment`` (with ``Proto``), ``Pose``,
``OBB``, ``Classify``, and every kit attention block (``yolo_attn.modules.AttentionGate``), through its own
``prune_channels`` hook.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from ..modules import AttentionGate
from ..registry import BLOCKS

__all__ = ["ChannelGraph", "Group", "SlimError", "Slot", "analyse"]

# Detect-family branches: ModuleLists of conv chains, one chain per input level; the chain's last Conv2d is an output
_HEAD_BRANCHES = ("cv2", "cv3", "cv4", "one2one_cv2", "one2one_cv3", "one2one_cv4")


class SlimError(ValueError):
    """A pruning request that cannot be carried out (bad ratio, nothing prunable, inconsistent record)."""


@dataclass
class Group:
    """Channels pruned together.

    Attributes:
        gid (int): Index in ``ChannelGraph.groups``.
        size (int): Number of channels.
        name (str): Stable name: the module path of the convolution that creates it (``:0``/``:1`` for halves).
        pinned (str): Why the group is kept whole ("" when prunable).
        producers (list[tuple[str, nn.Module, int]]): ``(name, BatchNorm, offset)`` whose |gamma| score the channels.
        tie (int | None): Groups with the same ``tie`` keep the same number of channels (``C2f``'s two halves).
    """

    gid: int
    size: int
    name: str
    pinned: str = ""
    producers: list[tuple[str, nn.Module, int]] = field(default_factory=list)
    tie: int | None = None

    @property
    def prunable(self) -> bool:
        """Whether the pruner may remove channels of this group (not pinned, and scored by a BatchNorm)."""
        return not self.pinned and bool(self.producers)

    def scores(self) -> torch.Tensor:
        """Return the channel scores: the largest |gamma| over the producing BatchNorms (float32, CPU)."""
        s = [bn.weight.detach().abs().float().cpu()[off : off + self.size] for _, bn, off in self.producers]
        return torch.stack(s).amax(0)


@dataclass
class Slot:
    """One sliceable tensor dimension: ``role`` of ``module``, covering the channels of ``layout`` in order.

    Roles: ``out`` (conv output), ``in`` (conv input), ``dw`` (depthwise conv), ``bn`` (norm), ``gate`` (kit block's
    ``prune_channels``), ``linear_in``, ``convt_in`` (transposed conv input), ``attr_c`` (a ``C2f``'s half width).
    """

    module: nn.Module
    role: str
    layout: list[int]


@dataclass
class ChannelGraph:
    """The groups and slots of one network.

    Attributes:
        groups (list[Group]): Every channel group.
        slots (list[Slot]): Every sliceable dimension.
        layers (list[str]): Per top-level layer, how it was analysed (its class name, or why it was left intact).
    """

    groups: list[Group] = field(default_factory=list)
    slots: list[Slot] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)

    def size(self, layout: list[int]) -> int:
        """Return the number of channels of a layout."""
        return sum(self.groups[g].size for g in layout)

    def by_name(self) -> dict[str, Group]:
        """Return the groups by their stable names."""
        return {g.name: g for g in self.groups}


class _Analyser:
    """Walks a YOLO ``nn.Sequential`` layer by layer and builds its :class:`ChannelGraph`."""

    def __init__(self, layers: nn.Sequential, ch: int, prefix: str = "model"):
        self.g = ChannelGraph()
        self.names = {id(m): n for n, m in layers.named_modules(prefix=prefix)}
        self.layers, self.ch = layers, ch
        self._out_channels: list[int] | None = None
        self._ties = 0

    # ----------------------------------------------------------------------------------------------- groups, slots
    def new(self, size: int, name: str, pinned: str = "") -> list[int]:
        """Create a group and return it as a one-group layout."""
        self.g.groups.append(Group(len(self.g.groups), size, name, pinned))
        return [len(self.g.groups) - 1]

    def pin(self, layout: list[int], why: str) -> None:
        """Keep every group of ``layout`` whole (the first reason given is kept)."""
        for gid in layout:
            self.g.groups[gid].pinned = self.g.groups[gid].pinned or why

    def slot(self, module: nn.Module, role: str, layout: list[int]) -> None:
        """Register a sliceable dimension; a BatchNorm slot also scores the groups it covers."""
        self.g.slots.append(Slot(module, role, list(layout)))
        if role == "bn":
            off = 0
            for gid in layout:
                self.g.groups[gid].producers.append((self.names.get(id(module), "?"), module, off))
                off += self.g.groups[gid].size

    def check(self, module: nn.Module, expected: int, layout: list[int]) -> None:
        """Raise if the traced layout does not have the channels ``module`` expects (an analysis bug, never silent)."""
        if self.g.size(layout) != expected:
            raise SlimError(
                f"channel analysis of {self.names.get(id(module), type(module).__name__)} found "
                f"{self.g.size(layout)} input channels where the module has {expected}; this layer arrangement is "
                "not supported by the pruner"
            )

    # ------------------------------------------------------------------------------------------------ primitives
    def conv(self, m: nn.Module, layout: list[int], out: list[int] | None = None) -> list[int]:
        """Ultralytics ``Conv``/``DWConv`` (conv, BatchNorm, activation with act(0) = 0); ``out`` for residuals."""
        c, bn = m.conv, getattr(m, "bn", None)
        name = self.names[id(m)]
        self.check(m, c.in_channels, layout)
        if bn is None:  # fused: no scale factors left to score
            self.pin(layout, "fused convolution")
            out = out or self.new(c.out_channels, name)
            self.pin(out, "fused convolution (no BatchNorm)")
            return out
        if c.groups == 1:
            self.slot(c, "in", layout)
            out = out or self.new(c.out_channels, name)
            self.check(m, c.out_channels, out)
            self.slot(c, "out", out)
            self.slot(bn, "bn", out)
            return out
        if c.groups == c.in_channels == c.out_channels and out in (None, layout):
            self.slot(c, "dw", layout)  # depthwise: channel i in, channel i out
            self.slot(bn, "bn", layout)
            return layout
        self.pin(layout, "grouped convolution")
        out = out or self.new(c.out_channels, name)
        self.pin(out, "grouped convolution")
        return out

    def head_conv(self, m: nn.Conv2d, layout: list[int]) -> None:
        """A head's final ``nn.Conv2d``: its inputs are sliced, its outputs (classes, boxes, ...) never."""
        self.check(m, m.in_channels, layout)
        self.slot(m, "in", layout)

    # ---------------------------------------------------------------------------------------------- block kinds
    def bottleneck(self, m: nn.Module, layout: list[int]) -> list[int]:
        """``Bottleneck``: cv1 -> cv2, whose output joins the input's groups when there is a residual sum."""
        h = self.conv(m.cv1, layout)
        return self.conv(m.cv2, h, out=layout if m.add else None)

    def c3(self, m: nn.Module, layout: list[int]) -> list[int]:
        """``C3``/``C3k``: cv3(cat(m(cv1(x)), cv2(x)))."""
        a = self.conv(m.cv1, layout)
        for b in m.m:
            a = self.inner(b, a)
        return self.conv(m.cv3, a + self.conv(m.cv2, layout))

    def c2f(self, m: nn.Module, layout: list[int]) -> list[int]:
        """``C2f``/``C3k2``: cv1's output split in two halves (pruned to the same width: ``chunk(2)`` needs it)."""
        name = self.names[id(m.cv1)]
        y0, y1 = self.new(m.c, f"{name}:0"), self.new(m.c, f"{name}:1")
        self.g.groups[y0[0]].tie = self.g.groups[y1[0]].tie = self._ties
        self._ties += 1
        self.conv(m.cv1, layout, out=y0 + y1)
        self.slot(m, "attr_c", y1)
        cat, cur = y0 + y1, y1
        for b in m.m:
            cur = self.inner(b, cur)
            cat = cat + cur
        return self.conv(m.cv2, cat)

    def psa_block(self, m: nn.Module, layout: list[int]) -> list[int]:
        """``PSABlock``: multi-head attention over its channels (kept whole); the FFN's hidden width is pruned."""
        self.pin(layout, "PSA attention")
        h = self.conv(m.ffn[0], layout)
        self.conv(m.ffn[1], h, out=layout if m.add else None)
        return layout

    def c2psa(self, m: nn.Module, layout: list[int]) -> list[int]:
        """``C2PSA``: cv1 split into an identity half and an attention half (both kept), cv2 pruned."""
        name = self.names[id(m.cv1)]
        a = self.new(m.c, f"{name}:0", "C2PSA split")
        b = self.new(m.c, f"{name}:1", "C2PSA split")
        self.conv(m.cv1, layout, out=a + b)
        for blk in m.m:
            b = self.psa_block(blk, b)
        return self.conv(m.cv2, a + b)

    def sppf(self, m: nn.Module, layout: list[int]) -> list[int]:
        """``SPPF``: cv1, repeated max pooling of the same channels, cv2 over their concatenation."""
        h = self.conv(m.cv1, layout)
        return self.conv(m.cv2, h * (getattr(m, "n", 3) + 1), out=layout if getattr(m, "add", False) else None)

    def gate(self, m: nn.Module, layout: list[int]) -> list[int]:
        """A kit attention block: sliced by its own ``prune_channels`` hook, or its channels pinned."""
        can = getattr(type(m), "can_prune", None)
        if callable(can) and can():
            self.slot(m, "gate", layout)
        else:
            self.pin(layout, f"{type(m).__name__} has no prune_channels")
        return layout

    def chain(self, seq: nn.Module, layout: list[int], what: str) -> None:
        """A head branch: Conv/DWConv chain ending in a plain ``nn.Conv2d`` whose outputs keep their meaning."""
        mods = list(_flatten(seq))
        for i, m in enumerate(mods):
            if _is(m, "Conv", "DWConv"):
                layout = self.conv(m, layout)
            elif type(m) is nn.Conv2d and i == len(mods) - 1:
                self.head_conv(m, layout)
            else:
                raise AssertionError(f"unexpected {type(m).__name__} in {what}")  # excluded by _supported

    def detect(self, m: nn.Module, inputs: list[list[int]]) -> None:
        """``Detect``/``Segment``/``Pose``/``OBB``: hidden convs pruned, class/box/mask/keypoint outputs kept."""
        for attr in _HEAD_BRANCHES:
            for i, branch in enumerate(getattr(m, attr, None) or []):
                self.chain(branch, inputs[i], attr)
        proto = getattr(m, "proto", None)
        if proto is not None:
            h = self.conv(proto.cv1, inputs[0])
            self.check(proto.upsample, proto.upsample.in_channels, h)
            self.slot(proto.upsample, "convt_in", h)
            up = self.new(proto.upsample.out_channels, self.names[id(proto.upsample)], "transposed conv (no BatchNorm)")
            self.pin(self.conv(proto.cv3, self.conv(proto.cv2, up)), "mask prototypes")

    def classify(self, m: nn.Module, layout: list[int]) -> None:
        """``Classify``: conv pruned, the linear layer's inputs sliced, its class outputs kept."""
        h = self.conv(m.conv, layout)
        self.check(m.linear, m.linear.in_features, h)
        self.slot(m.linear, "linear_in", h)

    def inner(self, m: nn.Module, layout: list[int]) -> list[int]:
        """A sub-block inside ``C2f``/``C3``: dispatch by kind (``_supported`` vouched for it)."""
        if isinstance(m, nn.Sequential):
            for s in m:
                layout = self.inner(s, layout)
            return layout
        if _is(m, "Bottleneck"):
            return self.bottleneck(m, layout)
        if _is(m, "C3", "C3k"):
            return self.c3(m, layout)
        if _is(m, "PSABlock"):
            return self.psa_block(m, layout)
        if _is_gate(m):
            return self.gate(m, layout)
        raise AssertionError(type(m).__name__)

    # ---------------------------------------------------------------------------------------------- top level
    def out_channels(self, i: int) -> int:
        """Output channels of top-level layer ``i``, measured by one small forward pass (only for unknown layers)."""
        if self._out_channels is None:
            self._out_channels = _probe(self.layers, self.ch)
        return self._out_channels[i]

    def run(self) -> ChannelGraph:
        """Analyse every top-level layer."""
        outs: list[list[int]] = []
        image = self.new(self.ch, "input", "input image")
        for i, m in enumerate(self.layers):
            inputs = [(outs[j] if outs else image) if j == -1 else outs[j] for j in _sources(m.f)]
            kind = type(m).__name__
            if not _supported(m):
                for layout in inputs:
                    self.pin(layout, f"consumed by {kind} (layer {i}), which the pruner leaves intact")
                outs.append(self.new(self.out_channels(i), self.names[id(m)], f"output of {kind} (layer {i})"))
                self.g.layers.append(f"{kind} (left intact)")
                continue
            self.g.layers.append(kind)
            x = inputs[0]
            if _is(m, "Concat"):
                outs.append([gid for layout in inputs for gid in layout])
            elif isinstance(m, (nn.Upsample, nn.Identity)):
                outs.append(x)
            elif _is(m, "Conv", "DWConv"):
                outs.append(self.conv(m, x))
            elif _is(m, "C2f", "C3k2"):
                outs.append(self.c2f(m, x))
            elif _is(m, "C3", "C3k"):
                outs.append(self.c3(m, x))
            elif _is(m, "SPPF"):
                outs.append(self.sppf(m, x))
            elif _is(m, "C2PSA"):
                outs.append(self.c2psa(m, x))
            elif _is(m, "Detect", "Segment", "Pose", "OBB"):
                self.detect(m, inputs)
                outs.append([])
            elif _is(m, "Classify"):
                self.classify(m, x)
                outs.append([])
            else:  # a kit attention block
                outs.append(self.gate(m, x))
        if outs:
            self.pin(outs[-1], "model output")
        return self.g


def _sources(f: int | list[int]) -> list[int]:
    """Return a layer's ``from`` as a list (Ultralytics indexes its outputs so far: -1 is the previous layer)."""
    return list(f) if isinstance(f, list) else [f]


def _is(m: nn.Module, *names: str) -> bool:
    """Whether ``m`` is exactly one of the named Ultralytics classes (subclasses may compute differently)."""
    t = type(m)
    return t.__name__ in names and t.__module__.startswith("ultralytics.nn.modules")


def _is_gate(m: nn.Module) -> bool:
    """Whether ``m`` is a kit attention block (channels in = channels out)."""
    return isinstance(m, AttentionGate) or type(m) in BLOCKS.classes()


def _flatten(m: nn.Module):
    """Yield the leaves of nested ``nn.Sequential`` containers in order."""
    if isinstance(m, nn.Sequential):
        for s in m:
            yield from _flatten(s)
    else:
        yield m


def _supported(m: nn.Module) -> bool:
    """Whether every part of top-level layer ``m`` is a kind the analysis knows (else it is left intact)."""
    if _is(m, "Concat"):
        return getattr(m, "d", 1) == 1
    if isinstance(m, (nn.Upsample, nn.Identity)) or _is(m, "Conv", "DWConv", "SPPF") or _is_gate(m):
        return True
    if _is(m, "C2f", "C3k2", "C3", "C3k"):
        return all(_inner_supported(b) for b in m.m)
    if _is(m, "C2PSA"):
        return all(_is(b, "PSABlock") for b in m.m)
    if _is(m, "Detect", "Segment", "Pose", "OBB"):
        known = {*_HEAD_BRANCHES, "dfl", "proto"}
        if any(n not in known for n, _ in m.named_children()):
            return False
        proto = getattr(m, "proto", None)
        if proto is not None and not (_is(proto, "Proto") and isinstance(proto.upsample, nn.ConvTranspose2d)):
            return False
        return all(_chain_supported(b) for a in _HEAD_BRANCHES for b in (getattr(m, a, None) or []))
    if _is(m, "Classify"):
        return {n for n, _ in m.named_children()} == {"conv", "pool", "drop", "linear"}
    return False


def _inner_supported(m: nn.Module) -> bool:
    """Whether a sub-block of ``C2f``/``C3`` is known."""
    if isinstance(m, nn.Sequential):
        return all(_inner_supported(s) for s in m)
    if _is(m, "C3", "C3k"):
        return all(_inner_supported(b) for b in m.m)
    return _is(m, "Bottleneck", "PSABlock") or _is_gate(m)


def _chain_supported(branch: nn.Module) -> bool:
    """Whether a head branch is a Conv/DWConv chain ending in a plain ``nn.Conv2d``."""
    mods = list(_flatten(branch))
    return bool(mods) and type(mods[-1]) is nn.Conv2d and all(_is(m, "Conv", "DWConv") for m in mods[:-1])


@torch.no_grad()
def _probe(layers: nn.Sequential, ch: int) -> list[int]:
    """Return each top-level layer's output channels from one 64x64 forward pass in eval mode (0 if not a tensor)."""
    training = [m.training for m in layers.modules()]
    layers.eval()
    p = next(layers.parameters(), torch.zeros(()))
    x = torch.zeros(1, ch, 64, 64, device=p.device, dtype=p.dtype)
    y, sizes = [], []
    try:
        for m in layers:
            if m.f != -1:
                x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]
            x = m(x)
            y.append(x)
            sizes.append(x.shape[1] if isinstance(x, torch.Tensor) and x.dim() > 1 else 0)
    finally:
        for m, t in zip(layers.modules(), training):
            m.training = t
    return sizes


def analyse(layers: nn.Sequential, ch: int = 3, prefix: str = "model") -> ChannelGraph:
    """Build the channel-dependency graph of a YOLO network.

    Args:
        layers (nn.Sequential): The model's layers (``DetectionModel.model``), each with Ultralytics' ``f`` and ``i``.
        ch (int): Input image channels.
        prefix (str): Module-path prefix used for names (``model`` for a ``DetectionModel``'s layers).

    Returns:
        (ChannelGraph): Groups and slots.

    Raises:
        SlimError: The traced channel counts disagree with a module's (an arrangement the pruner does not support).
    """
    return _Analyser(layers, ch, prefix).run()
