"""ONNX export of kit models: an ONNX symbolic for torchvision's deformable convolution, and each block's opset floor.

Why. A block may need a newer ONNX opset than Ultralytics picks; it declares the lowest one that expresses it as
``export_opset`` on its class (:class:`yolo_attn.modules.base.AttentionGate`), and a model's required opset is the
highest among its kit blocks (plus 19 for any ``torchvision.ops.DeformConv2d``). Blocks built on
``torchvision.ops.deform_conv2d`` need more: that function dispatches to the custom op ``torchvision::deform_conv2d``.
Ultralytics exports ONNX with PyTorch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)`` in
``ultralytics.utils.export.engine.torch2onnx``), and neither PyTorch nor torchvision registers a symbolic for that
op, so ``export format=onnx`` failed on every such model ("ONNX export failed on an operator with unrecognized
namespace torchvision::deform_conv2d"). ONNX has the op as ``DeformConv`` since opset 19; this module supplies the
two missing pieces.

1. :func:`register_deform_conv_symbolic` maps ``torchvision::deform_conv2d`` to ONNX ``DeformConv`` for opset >= 19.
   torchvision's op takes ``(input, weight, offset, mask, bias, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w,
   n_weight_grps, n_offset_grps, use_mask)``; ``DeformConv`` takes inputs ``(X, W, offset, B, mask)`` and attributes
   ``strides``, ``pads`` (begin_h, begin_w, end_h, end_w), ``dilations``, ``group``, ``offset_group`` and
   ``kernel_shape``. The offset and mask layouts are the same in both: offsets ``(N, offset_group * kh * kw * 2, oH,
   oW)``, a (dy, dx) pair per kernel point, kernel points row-major, offset groups outermost; masks ``(N,
   offset_group * kh * kw, oH, oW)``. This was checked numerically against onnxruntime, not assumed
   (``tests/test_export.py``: groups, offset groups, stride, padding, dilation, with and without mask, offsets
   reaching outside the image; max abs diff about 1e-6). Without a mask (``use_mask=False``, DCNv1) the mask
   input is omitted; torchvision then passes a placeholder zeros tensor, which the exporter drops as dead code.

2. :func:`install_export` also wraps Ultralytics' ``Exporter.export_onnx``. That method picks ``opset = args.opset or
   best_onnx_opset(onnx)``, which is 18 with current torch (Ultralytics stays below the newest opsets on purpose).
   When the model being exported requires a higher opset than that (:func:`required_opset`: a kit block declaring
   ``export_opset``, or a ``torchvision.ops.DeformConv2d``), the wrapper raises ``args.opset`` to it before the
   original method runs and logs why, naming the block classes (info for the default opset, warning for one the
   user or a format asked for). Decision: an explicit lower opset (``opset=17``) is raised too, not refused: such an
   export cannot succeed below the floor whatever was asked, the floor is the lowest opset that expresses the model,
   and the warning says so. Models that need nothing are not touched. If the installed ``onnx`` or ``torch`` cannot
   write the required opset, :class:`DeformConvExportError` names what to install (``onnx>=1.14``, ``torch>=2.1``
   for opset 19).

   Why this hook point: ``export_onnx`` is the one method every ONNX-based format goes through (``export_engine``,
   ``export_saved_model``, ``export_mnn``, ``export_rknn``, ``export_ascend``, ``export_qnn``, ``export_xilinx``,
   ``export_hailo`` and ``export_deepx`` call ``self.export_onnx()``); ``self.model`` is the prepared model by then,
   and ``self.args.opset`` is read only inside it. Hooking ``torch2onnx`` instead would leave Ultralytics' log line
   ("starting export with onnx ... opset 18") and ``args.opset`` (read by ``NMSModel``) wrong; hooking ``__call__``
   would have to predict which formats go through ONNX. Formats that set a lower opset themselves before calling it
   (``ascend``/``xilinx`` 17, ``hailo`` 11) get the model's floor, with the warning; whether their converters accept
   ``DeformConv`` is up to them.

Checked with Ultralytics 8.4.190, torch 2.15, torchvision 0.29, onnx 1.23.2 and onnxruntime 1.31.1:

- onnxruntime runs ``DeformConv`` on the CPU execution provider (added by microsoft/onnxruntime#27393; releases
  before it fail with "NOT_IMPLEMENTED: Could not find an implementation for DeformConv(19)"), so
  ``YOLO("model.onnx").predict(...)`` works, with ``dynamic=True`` too.
- ``simplify=True`` (Ultralytics' default) runs onnxslim on the exported graph and, on any exception, logs a warning
  and keeps the unsimplified graph, so a simplifier cannot break a DeformConv export; ONNX's own checker and shape
  inference handle ``DeformConv``. onnxslim itself was not installed here (Ultralytics installs it on demand when
  online); the tests check it on a DeformConv graph wherever it is installed. ``simplify`` is left alone.
- TorchScript export needs nothing: ``torch.jit.trace`` records ``torchvision::deform_conv2d`` and ``torch.jit.load``
  resolves it once torchvision is imported (Ultralytics imports it).
- PyTorch's ``torch.export``-based ONNX exporter (``dynamo=True``) is not used by Ultralytics and not covered here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
from torch.onnx import symbolic_helper

from ..registry import BLOCKS, Registry
from ._patch import patch

__all__ = [
    "DEFORM_CONV_OPSET",
    "DeformConvExportError",
    "default_onnx_opset",
    "deform_conv2d_symbolic",
    "has_deform_conv",
    "install_export",
    "raise_opset",
    "register_deform_conv_symbolic",
    "required_opset",
]

DEFORM_CONV_OPSET = 19  # first ONNX opset with DeformConv
_OP_NAME = "torchvision::deform_conv2d"
_lock = threading.Lock()
_registered = False


class DeformConvExportError(RuntimeError):
    """The installed onnx or torch cannot export the ONNX opset that deformable convolution needs."""


@symbolic_helper.parse_args("v", "v", "v", "v", "v", "i", "i", "i", "i", "i", "i", "i", "i", "b")
def deform_conv2d_symbolic(
    g: Any,
    input: Any,  # noqa: A002 (torchvision's argument name)
    weight: Any,
    offset: Any,
    mask: Any,
    bias: Any,
    stride_h: int,
    stride_w: int,
    pad_h: int,
    pad_w: int,
    dil_h: int,
    dil_w: int,
    n_weight_grps: int,
    n_offset_grps: int,
    use_mask: bool,
) -> Any:
    """TorchScript-ONNX symbolic: ``torchvision::deform_conv2d`` -> ONNX ``DeformConv`` (opset >= 19).

    Args:
        g (torch.onnx GraphContext): The ONNX graph under construction.
        input (torch._C.Value): Input ``(N, C_in, H, W)``; ONNX ``X``.
        weight (torch._C.Value): Weight ``(C_out, C_in / groups, kh, kw)``; ONNX ``W``.
        offset (torch._C.Value): Offsets ``(N, 2 * offset_groups * kh * kw, oH, oW)``; same layout in ONNX.
        mask (torch._C.Value): Modulation mask ``(N, offset_groups * kh * kw, oH, oW)``, used only if ``use_mask``.
        bias (torch._C.Value): Bias ``(C_out,)`` (torchvision passes zeros when the caller gave none); ONNX ``B``.
        stride_h (int): Vertical stride.
        stride_w (int): Horizontal stride.
        pad_h (int): Vertical padding (both sides).
        pad_w (int): Horizontal padding (both sides).
        dil_h (int): Vertical dilation.
        dil_w (int): Horizontal dilation.
        n_weight_grps (int): Convolution groups; ONNX ``group``.
        n_offset_grps (int): Offset groups; ONNX ``offset_group``.
        use_mask (bool): Whether ``mask`` is real (DCNv2) or torchvision's placeholder (DCNv1).

    Returns:
        (torch._C.Value): The ``DeformConv`` output ``(N, C_out, oH, oW)``.
    """
    inputs = [input, weight, offset, bias] + ([mask] if use_mask else [])
    attrs = dict(
        strides_i=[stride_h, stride_w],
        pads_i=[pad_h, pad_w, pad_h, pad_w],
        dilations_i=[dil_h, dil_w],
        group_i=n_weight_grps,
        offset_group_i=n_offset_grps,
    )
    sizes = symbolic_helper._get_tensor_sizes(weight)
    if sizes and len(sizes) == 4 and all(isinstance(s, int) for s in sizes[2:]):
        attrs["kernel_shape_i"] = list(sizes[2:])  # optional in ONNX (inferred from W); explicit where known
    return g.op("DeformConv", *inputs, **attrs)


def _torch_max_opset() -> int:
    """Return the highest opset PyTorch's TorchScript-based ONNX exporter writes."""
    try:
        from torch.onnx import _constants  # private: the exporter's own limit

        limit = getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", getattr(_constants, "ONNX_MAX_OPSET", None))
        if limit is not None:
            return int(limit)
    except ImportError:  # pragma: no cover - the constants moved; fall back on the release
        pass
    major, minor = (int(v) for v in torch.__version__.split(".")[:2])  # pragma: no cover
    return 19 if (major, minor) >= (2, 1) else 18  # pragma: no cover - opset 19 arrived in torch 2.1


def _check_toolchain(onnx_max: int | None = None, opset: int = DEFORM_CONV_OPSET, why: str = "") -> None:
    """Raise :class:`DeformConvExportError` if onnx or torch cannot write ``opset``.

    Args:
        onnx_max (int | None): The installed onnx's newest opset (looked up if None).
        opset (int): The opset the model needs.
        why (str): What needs it, for the message (e.g. "MyBlock (export_opset=19)").
    """
    if onnx_max is None:
        import onnx

        onnx_max = onnx.defs.onnx_opset_version()
    problems = []
    if onnx_max < opset:
        problems.append(f"the installed onnx knows opsets up to {onnx_max}: pip install 'onnx>=1.14'")
    torch_max = _torch_max_opset()
    if torch_max < opset:
        problems.append(
            f"torch {torch.__version__} exports ONNX opsets up to {torch_max}: pip install 'torch>=2.1' "
            "(with a matching torchvision)"
        )
    if problems:
        raise DeformConvExportError(
            f"ONNX export of this model needs opset >= {opset} ({why or 'deformable convolution'}), "
            f"but {'; and '.join(problems)}."
        )


def register_deform_conv_symbolic() -> bool:
    """Register :func:`deform_conv2d_symbolic` for ``torchvision::deform_conv2d`` at opset 19 (idempotent).

    The registration covers opset 19 and every later one. It is skipped (returning False) when the installed torch
    cannot export opset 19; exporting a model with deformable convolutions then raises :class:`DeformConvExportError`
    from the opset check.

    Returns:
        (bool): Whether the symbolic is registered.
    """
    global _registered
    with _lock:
        if not _registered and _torch_max_opset() >= DEFORM_CONV_OPSET:
            torch.onnx.register_custom_op_symbolic(_OP_NAME, deform_conv2d_symbolic, DEFORM_CONV_OPSET)
            _registered = True
        return _registered


def _opset_needs(model: nn.Module, registry: Registry = BLOCKS) -> dict[str, int]:
    """Return ``{class name: opset}`` for every module class in ``model`` that needs a minimum ONNX opset."""
    from torchvision.ops import DeformConv2d

    kinds = registry.classes()
    needs = {}
    for m in model.modules():
        opset = getattr(type(m), "export_opset", 0) if isinstance(m, kinds) else 0
        if isinstance(m, DeformConv2d):
            opset = DEFORM_CONV_OPSET
        if opset:
            needs[type(m).__name__] = max(opset, needs.get(type(m).__name__, 0))
    return needs


def required_opset(model: nn.Module, registry: Registry = BLOCKS) -> int:
    """Return the lowest ONNX opset that expresses ``model``: the highest ``export_opset`` among its kit blocks.

    ``torchvision.ops.DeformConv2d`` modules count as 19 (ONNX ``DeformConv``); other modules as 0 (any opset).

    Args:
        model (nn.Module): The model (or a wrapper around it).
        registry (Registry): The kit blocks.

    Returns:
        (int): The opset floor, 0 when the model needs none.
    """
    return max(_opset_needs(model, registry).values(), default=0)


def has_deform_conv(model: nn.Module, registry: Registry = BLOCKS) -> bool:
    """Return whether ``model`` needs ONNX ``DeformConv``: a module that requires opset >= 19 (see ``required_opset``).

    Args:
        model (nn.Module): The model (or a wrapper around it).
        registry (Registry): The kit blocks.

    Returns:
        (bool): True if a kit block declares ``export_opset >= 19`` or the model holds a ``DeformConv2d``.
    """
    return required_opset(model, registry) >= DEFORM_CONV_OPSET


def default_onnx_opset(onnx: Any) -> int:
    """Return the opset Ultralytics' ``export_onnx`` uses when none is asked for (its helper moved between releases).

    Args:
        onnx (module): The imported ``onnx`` package.

    Returns:
        (int): The default opset of the installed Ultralytics.
    """
    try:
        from ultralytics.utils.export.engine import best_onnx_opset  # 8.4.x
    except ImportError:
        try:
            from ultralytics.engine.exporter import best_onnx_opset  # late 8.3.x
        except ImportError:  # early 8.3.x: export_onnx uses get_latest_opset()
            from ultralytics.utils.torch_utils import get_latest_opset

            return get_latest_opset()
    return best_onnx_opset(onnx)


def raise_opset(exporter: Any, registry: Registry = BLOCKS) -> int | None:
    """Raise ``exporter.args.opset`` to the model's :func:`required_opset` when the effective opset is lower.

    The effective opset is the one Ultralytics would pick: ``args.opset or best_onnx_opset(onnx)``. Nothing changes
    for models that need no opset or when the effective one is already high enough. Otherwise the toolchain is
    checked (and the DeformConv symbolic registered) first, whatever the opset.

    Args:
        exporter (ultralytics.engine.exporter.Exporter): The exporter, after ``__call__`` prepared ``model``/``args``.
        registry (Registry): The kit blocks.

    Returns:
        (int | None): The opset now set on ``exporter.args``, or None if the model needed nothing.

    Raises:
        DeformConvExportError: onnx or torch cannot write the required opset.
    """
    model = getattr(exporter, "model", None)
    needs = _opset_needs(model, registry) if isinstance(model, nn.Module) else {}
    need = max(needs.values(), default=0)
    if not need:
        return None
    import onnx
    from ultralytics.utils import LOGGER

    why = ", ".join(f"{name} (export_opset={opset})" for name, opset in sorted(needs.items()))
    _check_toolchain(onnx.defs.onnx_opset_version(), need, why)
    if need >= DEFORM_CONV_OPSET:
        register_deform_conv_symbolic()
    requested = exporter.args.opset
    opset = requested or default_onnx_opset(onnx)
    if opset >= need:
        return None
    msg = (
        f"yolo-attn: the model's blocks need ONNX opset>={need}: {why}; "
        f"raising opset {opset}{'' if requested else ' (default)'} -> {need}."
    )
    (LOGGER.warning if requested else LOGGER.info)(msg)
    exporter.args.opset = need
    return need




def _hooked(original: Callable) -> Callable:
    """Wrap ``Exporter.export_onnx`` so the opset is raised to the model's floor first."""

    def export_onnx(self, *args, **kwargs):
        raise_opset(self)
        return original(self, *args, **kwargs)

    return export_onnx


def install_export(exporter_cls: type | None = None) -> None:
    """Make Ultralytics' ONNX export handle the kit's blocks: DeformConv symbolic and opset floor (idempotent).

    Args:
        exporter_cls (type | None): ``ultralytics.engine.exporter.Exporter`` (imported if None).
    """
    if exporter_cls is None:
        from ultralytics.engine.exporter import Exporter as exporter_cls
    register_deform_conv_symbolic()
    patch(exporter_cls, "export_onnx", _hooked)
