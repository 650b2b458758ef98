"""The block contract: what every attention block is and declares, so the rest of the kit needs no per-block code.

A block is an ``nn.Module`` subclass of :class:`AttentionGate`:

- constructed as ``Block(c1, *yaml_args)``: input channels first (the parser fills them in), then the YAML
  arguments, each declared as an :class:`Arg` with its default and allowed range;
- channels preserved: ``(B, C, H, W) -> (B, C, H, W)``;
- ``gate(x)`` returns a tensor that broadcasts against ``x``, and ``forward(x) == x * gate(x)``. The base ``forward``
  does that once for every block, reusing the gate's memory for the output when autograd is off and the gate is a
  fresh full-size tensor (``fresh_gate``).

What the rest of the kit reads from the class (never from the block's name):

==================  ===========================================================================================
``args``            the YAML arguments (:class:`Arg`): error messages, ``yolo-attn list``, the README table
``aliases``         other YAML names the block answers to (community spellings such as ``SEAttention``)
``paper``           citation for docs; ``formula``: the gate in one line; ``params``: parameters added, as text;
                    ``notes``: the choices made where the paper leaves room (the README lists them)
``config_args``     the arguments written into generated configs (``yolo-attn make-config`` default)
``config_params``   extra top-level keys for generated configs, e.g. ``{"nam_penalty": 1.0e-4}``
``config_docs``     the comment written after each of those keys in generated configs (optional)
``export_opset``    the lowest ONNX opset that can express the block (0: any)
``scale_factors()`` BN-style scale factors the L1 sparsity penalty and the saliency report act on (default none)
``fuse()``          fold for inference, called by Ultralytics' ``model.fuse()`` (default: nothing to fold)
``prune_channels``  slice the block to a subset of its channels; blocks that do not implement it pin their
                    channels (the pruner keeps them all). ``prune_exact`` says whether slicing keeps the gate of
                    the kept channels identical when the removed channels carry zeros.
==================  ===========================================================================================

Blocks register themselves where they are defined, with ``@BLOCKS.register`` (see ``yolo_attn.registry``).
"""

from __future__ import annotations

import inspect
import math
import numbers
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn as nn

__all__ = ["Arg", "AttentionGate"]

_MISSING = object()


@dataclass(frozen=True)
class Arg:
    """One YAML argument of a block: name, default and allowed values.

    Attributes:
        name (str): Argument name (the ``__init__`` parameter).
        default (Any): Default value.
        kind (str): ``"number"``, ``"int"`` or ``"bool"``.
        low (float | None): Lower bound for numbers.
        high (float | str | None): Upper bound; ``"c1"`` means at most the block's input channels (or the default,
            if larger: the default always works).
        low_open (bool): Exclude ``low`` itself.
        odd (bool): Integers only: must be odd.
        allow_none (bool): ``None`` (YAML ``null``) is accepted and means "derive it" (e.g. ECA's kernel size).
        doc (str): What the argument does, one line.
    """

    name: str
    default: Any
    kind: str = "number"
    low: float | None = None
    high: float | str | None = None
    low_open: bool = False
    odd: bool = False
    allow_none: bool = False
    doc: str = ""

    def describe(self, c1: int | None = None) -> str:
        """Return the allowed values in words, e.g. ``"a number > 0 and <= 256"``."""
        if self.kind == "bool":
            return "true or false"
        what = "an odd integer" if self.odd else "an integer" if self.kind == "int" else "a number"
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            high = self._high(c1) if c1 is not None or self.high != "c1" else "the input channels"
            parts.append(f"<= {high:g}" if isinstance(high, (int, float)) else f"<= {high}")
        text = f"{what} {' and '.join(parts)}".rstrip()
        return text + (" (or null for the default rule)" if self.allow_none else "")

    def _high(self, c1: int | None) -> float:
        """Return the numeric upper bound (``"c1"`` resolved)."""
        return max(c1, self.default) if self.high == "c1" else self.high

    def check(self, block: str, value: Any, c1: int) -> Any:
        """Return ``value`` validated (ints as int, numbers as float), or raise a ``ValueError``.

        Args:
            block (str): Block name for the message.
            value (Any): The value given.
            c1 (int): The block's input channels (for ``high="c1"``).

        Returns:
            (Any): The value.
        """
        if value is None and self.allow_none:
            return None
        if self.kind == "bool":
            ok = isinstance(value, bool)
        else:
            kind = numbers.Integral if self.kind == "int" else numbers.Real
            ok = isinstance(value, kind) and not isinstance(value, bool) and math.isfinite(value)
            if ok and self.low is not None:
                ok = value > self.low if self.low_open else value >= self.low
            if ok and self.high is not None:
                ok = value <= self._high(c1)
            if ok and self.odd:
                ok = value % 2 == 1
        if not ok:
            raise ValueError(f"{block}: argument '{self.name}' must be {self.describe(c1)}, got {value!r}")
        return value if self.kind == "bool" else int(value) if self.kind == "int" else float(value)


class AttentionGate(nn.Module):
    """Base class of the attention blocks: ``forward(x) = x * gate(x)``, channels preserved.

    Subclasses declare their class attributes (see the module docstring), call ``super().__init__(c1)`` and then
    ``self.checked(...)`` on their own arguments, and implement ``gate``.

    Attributes:
        c1 (int): Input (= output) channels.
    """

    args: ClassVar[tuple[Arg, ...]] = ()
    aliases: ClassVar[tuple[str, ...]] = ()
    paper: ClassVar[str] = ""
    formula: ClassVar[str] = ""
    params: ClassVar[str] = ""
    notes: ClassVar[str] = ""
    config_args: ClassVar[tuple] = ()
    config_params: ClassVar[dict[str, Any]] = {}
    config_docs: ClassVar[dict[str, str]] = {}
    export_opset: ClassVar[int] = 0
    fresh_gate: ClassVar[bool] = False  # gate() returns a new full-size tensor that forward may overwrite
    prune_exact: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Check that the declared ``args`` match the ``__init__`` signature (names, order, defaults)."""
        super().__init_subclass__(**kwargs)
        if "args" not in cls.__dict__:
            return
        params = list(inspect.signature(cls.__init__).parameters.values())[2:]  # skip self, c1
        declared = [(a.name, a.default) for a in cls.args]
        actual = [(p.name, p.default) for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
        if declared != actual:
            raise TypeError(f"{cls.__name__}.args {declared} do not match __init__'s arguments {actual}")

    def __init__(self, c1: int):
        """Check and store the input channels.

        Args:
            c1 (int): Input channels, >= 1.
        """
        super().__init__()
        if isinstance(c1, bool) or not isinstance(c1, numbers.Integral) or c1 < 1:
            raise ValueError(f"{type(self).__name__}: argument 'c1' (input channels) must be an integer >= 1, got {c1!r}")
        self.c1 = int(c1)

    def checked(self, **values: Any) -> list[Any]:
        """Validate the block's own arguments against their declarations, in declaration order.

        Args:
            **values (Any): Every declared argument by name.

        Returns:
            (list[Any]): The validated values, in the order of ``args``.
        """
        return [a.check(type(self).__name__, values[a.name], self.c1) for a in self.args]

    @classmethod
    def signature(cls) -> str:
        """Return the YAML arguments with their defaults, e.g. ``[reduction=16, divisor=8]``."""
        return "[" + ", ".join(f"{a.name}={a.default!r}" for a in cls.args) + "]"

    @classmethod
    def can_prune(cls) -> bool:
        """Whether the block implements ``prune_channels`` (otherwise the pruner keeps all its channels)."""
        return cls.prune_channels is not AttentionGate.prune_channels

    @classmethod
    def can_fuse(cls) -> bool:
        """Whether the block has something to fold for inference."""
        return cls.fuse is not AttentionGate.fuse

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """Return the multiplicative gate for ``x``; ``forward(x) == x * gate(x)``.

        Args:
            x (torch.Tensor): Input of shape (B, C, H, W).

        Returns:
            (torch.Tensor): A tensor that broadcasts against ``x``.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement gate(x)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the gate.

        Args:
            x (torch.Tensor): Input of shape (B, C, H, W).

        Returns:
            (torch.Tensor): ``x * gate(x)``, same shape.
        """
        g = self.gate(x)
        if self.fresh_gate and not torch.is_grad_enabled() and g.shape == x.shape and g.dtype == x.dtype:
            return g.mul_(x)  # without autograd the gate's memory becomes the output: one full-size allocation
        return x * g

    def scale_factors(self) -> list[nn.Parameter]:
        """Return the scale factors the L1 sparsity penalty and the saliency report act on (none by default).

        Returns:
            (list[nn.Parameter]): The parameters.
        """
        return []

    def fuse(self) -> AttentionGate:
        """Fold for inference (nothing to fold by default); idempotent.

        Returns:
            (AttentionGate): This module.
        """
        return self

    def prune_channels(self, keep: torch.Tensor) -> None:
        """Slice the block in place to the channels ``keep`` (sorted indices into its current channels).

        Args:
            keep (torch.Tensor): 1-D long tensor of the channels to keep.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement prune_channels")

    def extra_repr(self) -> str:
        """Return the block's arguments for ``print(model)``."""
        return ", ".join(f"{a.name}={getattr(self, a.name, '?')!r}" for a in self.args)


def slice_param(module: nn.Module, name: str, keep: torch.Tensor, dim: int = 0) -> None:
    """Replace ``module.<name>`` (parameter or buffer) by its slice along ``dim``, keeping its kind.

    Args:
        module (nn.Module): Owner.
        name (str): Attribute name.
        keep (torch.Tensor): Indices to keep.
        dim (int): Dimension to slice.
    """
    t = getattr(module, name)
    if t is None:
        return
    data = t.data.index_select(dim, keep.to(t.device)).clone()
    if isinstance(t, nn.Parameter):
        setattr(module, name, nn.Parameter(data, requires_grad=t.requires_grad))
    else:
        module.register_buffer(name, data, persistent=name not in module._non_persistent_buffers_set)


def slice_conv2d(conv: nn.Conv2d, out_keep: torch.Tensor | None = None, in_keep: torch.Tensor | None = None) -> None:
    """Slice a ``Conv2d`` in place to the output channels ``out_keep`` and/or input channels ``in_keep``.

    Depthwise/grouped convolutions (``groups == in_channels == out_channels``) are sliced along both with
    ``out_keep`` and keep ``groups`` equal to the new channel count; other grouped convolutions are refused.

    Args:
        conv (nn.Conv2d): The convolution.
        out_keep (torch.Tensor, optional): Output channels to keep.
        in_keep (torch.Tensor, optional): Input channels to keep.
    """
    if conv.groups > 1:
        if not (conv.groups == conv.in_channels == conv.out_channels) or in_keep is not None and out_keep is None:
            raise ValueError(f"cannot slice grouped convolution {conv} (only depthwise ones, by output channel)")
        slice_param(conv, "weight", out_keep, 0)
        slice_param(conv, "bias", out_keep, 0)
        conv.in_channels = conv.out_channels = conv.groups = len(out_keep)
        return
    if out_keep is not None:
        slice_param(conv, "weight", out_keep, 0)
        slice_param(conv, "bias", out_keep, 0)
        conv.out_channels = len(out_keep)
    if in_keep is not None:
        slice_param(conv, "weight", in_keep, 1)
        conv.in_channels = len(in_keep)


def slice_norm(norm: nn.Module, keep: torch.Tensor) -> None:
    """Slice a BatchNorm/InstanceNorm/GroupNorm-free per-channel norm (affine and running statistics) in place.

    Args:
        norm (nn.Module): ``nn.BatchNorm2d``, ``nn.InstanceNorm2d`` or ``nn.LayerNorm`` over channels.
        keep (torch.Tensor): Channels to keep.
    """
    for name in ("weight", "bias", "running_mean", "running_var"):
        if getattr(norm, name, None) is not None:
            slice_param(norm, name, keep, 0)
    if hasattr(norm, "num_features"):
        norm.num_features = len(keep)
    if hasattr(norm, "normalized_shape"):
        norm.normalized_shape = (len(keep),)


__all__ += ["slice_conv2d", "slice_norm", "slice_param"]
