"""Checks shared by the per-block test files: random weights, fp16, ONNX parity, pruning, a YOLOv8n row, names.

Each block's test file writes its own independent reference of the paper's (or the authors') formula; the helpers
here know nothing about any particular block.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

__all__ = [
    "assert_autocast_close",
    "assert_names_free",
    "assert_prune_consistent",
    "fp16_forward",
    "n_params",
    "onnx_parity",
    "randomise_",
    "yolov8n_with_row",
]

ONNX_WARNINGS = [  # expected noise from PyTorch's legacy (TorchScript-based) ONNX exporter
    "ignore::torch.jit.TracerWarning",
    "ignore:You are using the legacy TorchScript-based ONNX export:DeprecationWarning",
    "ignore:The feature will be removed:DeprecationWarning",
]


def n_params(m: nn.Module) -> int:
    """Return the number of parameters of ``m``."""
    return sum(p.numel() for p in m.parameters())


def randomise_(m: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter and BatchNorm buffer non-trivial values (norm scales around 1), in place."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in m.named_parameters():
            scale_like = name.endswith("weight") and p.dim() == 1  # BN/GN/LN scale
            p.copy_(torch.randn(p.shape, generator=g) * 0.5 + (1.0 if scale_like else 0.0))
        for name, b in m.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.3)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) * 1.5 + 0.5)
    return m


def fp16_forward(make, c: int, mode: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run a float16 copy of a randomised block and its float32 original on the same (fp16-representable) input.

    Args:
        make (Callable[[int], nn.Module]): Block factory.
        c (int): Channels.
        mode (str): ``"train"`` or ``"eval"``.
        x (torch.Tensor): Float32 input.

    Returns:
        (tuple[torch.Tensor, torch.Tensor]): The float16 output and the float32 output.
    """
    m32 = getattr(randomise_(make(c), seed=5), mode)()
    m16 = make(c)
    m16.load_state_dict(m32.state_dict())
    m16 = getattr(m16.half(), mode)()
    x16 = x.half()
    with torch.no_grad():
        try:
            y16 = m16(x16)
        except (RuntimeError, NotImplementedError) as e:  # e.g. "not implemented for 'Half'" on some CPU builds
            pytest.skip(f"float16 op not supported on CPU in this torch build: {e}")
        return y16, m32(x16.float())


def assert_autocast_close(make, c: int, mode: str) -> None:
    """Run a randomised block under CPU autocast (bfloat16, the CPU analogue of CUDA AMP training) and compare.

    With and without autograd, on float32 and bfloat16 input: the output is finite and within bfloat16 precision
    of the float32 block.

    Args:
        make (Callable[[int], nn.Module]): Block factory.
        c (int): Channels.
        mode (str): ``"train"`` or ``"eval"``.
    """
    m = getattr(randomise_(make(c), seed=6), mode)()
    x = torch.randn(2, c, 20, 20)
    with torch.no_grad():
        ref = m(x)
    for dtype in (torch.float32, torch.bfloat16):
        for grad in (True, False):
            with torch.set_grad_enabled(grad), torch.autocast("cpu", dtype=torch.bfloat16):
                y = m(x.to(dtype))
            assert y.shape == x.shape and torch.isfinite(y).all()
            torch.testing.assert_close(y.detach().float(), ref, rtol=5e-2, atol=5e-2)


def onnx_parity(block: nn.Module, x: torch.Tensor, path: Path, atol: float = 1e-5) -> float:
    """Export ``block`` alone to ONNX (the exporter Ultralytics uses), run it in onnxruntime, compare with PyTorch.

    Args:
        block (nn.Module): The block, in eval mode.
        x (torch.Tensor): Input.
        path (Path): Directory for the ``.onnx`` file.
        atol (float): Allowed absolute difference.

    Returns:
        (float): The largest absolute difference.
    """
    import onnx
    import onnxruntime as ort

    f = path / f"{type(block).__name__}.onnx"
    opset = max(18, getattr(block, "export_opset", 0))
    torch.onnx.export(block, (x,), str(f), opset_version=opset, dynamo=False, input_names=["x"], output_names=["y"])
    onnx.checker.check_model(onnx.load(str(f)), full_check=True)
    sess = ort.InferenceSession(str(f), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"x": x.numpy()})
    with torch.no_grad():
        ref = block(x).numpy()
    assert y.shape == ref.shape
    err = float(np.abs(y - ref).max())
    assert err < atol, f"ONNX vs PyTorch: max |diff| {err:.3g} >= {atol}"
    return err


def assert_prune_consistent(block: nn.Module, keep: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Prune a copy of ``block`` to ``keep`` and return (kept channels of the full output, pruned output).

    The removed channels of ``x`` are zeroed first, so for a block with ``prune_exact`` the two must be equal. Shapes
    and the declared channel count are checked here.

    Args:
        block (nn.Module): The block (eval mode), not modified.
        keep (torch.Tensor): Sorted channel indices to keep.
        x (torch.Tensor): Input of shape (B, C, H, W).

    Returns:
        (tuple[torch.Tensor, torch.Tensor]): The unpruned block's output on the kept channels, the pruned block's.
    """
    import copy

    x = x.clone()
    x[:, [i for i in range(x.shape[1]) if i not in set(keep.tolist())]] = 0
    pruned = copy.deepcopy(block)
    pruned.prune_channels(keep)
    assert pruned.c1 == len(keep)
    with torch.no_grad():
        full = block(x)[:, keep]
        small = pruned(x[:, keep])
    assert small.shape == full.shape and torch.isfinite(small).all()
    return full, small


@functools.lru_cache(maxsize=1)
def stock_yolov8n_params() -> int:
    """Parameter count of Ultralytics' own YOLOv8n (80 classes)."""
    from ultralytics.nn.tasks import DetectionModel

    return n_params(DetectionModel("yolov8n.yaml", verbose=False))


def yolov8n_dict(row: list) -> dict:
    """Return YOLOv8n as a dict config with ``row`` (e.g. ``[-1, 1, name, []]``) inserted after SPPF (layer 10)."""
    p5 = 10  # the head's deepest input: the row after SPPF
    backbone = [
        [-1, 1, "Conv", [64, 3, 2]],
        [-1, 1, "Conv", [128, 3, 2]],
        [-1, 3, "C2f", [128, True]],
        [-1, 1, "Conv", [256, 3, 2]],
        [-1, 6, "C2f", [256, True]],
        [-1, 1, "Conv", [512, 3, 2]],
        [-1, 6, "C2f", [512, True]],
        [-1, 1, "Conv", [1024, 3, 2]],
        [-1, 3, "C2f", [1024, True]],
        [-1, 1, "SPPF", [1024, 5]],
        row,
    ]
    head = [
        [-1, 1, "nn.Upsample", [None, 2, "nearest"]],
        [[-1, 6], 1, "Concat", [1]],
        [-1, 3, "C2f", [512]],
        [-1, 1, "nn.Upsample", [None, 2, "nearest"]],
        [[-1, 4], 1, "Concat", [1]],
        [-1, 3, "C2f", [256]],
        [-1, 1, "Conv", [256, 3, 2]],
        [[-1, p5 + 3], 1, "Concat", [1]],
        [-1, 3, "C2f", [512]],
        [-1, 1, "Conv", [512, 3, 2]],
        [[-1, p5], 1, "Concat", [1]],
        [-1, 3, "C2f", [1024]],
        [[p5 + 6, p5 + 9, p5 + 12], 1, "Detect", ["nc"]],
    ]
    return {"nc": 80, "scale": "n", "scales": {"n": [0.33, 0.25, 1024]}, "backbone": backbone, "head": head}


def yolov8n_with_row(name: str, args: list) -> tuple[nn.Module, nn.Module]:
    """Build YOLOv8n with ``[-1, 1, name, args]`` after SPPF through ``DetectionModel`` and check it.

    Checks: the row became exactly one block of the registered class, built for SPPF's 256 channels; the model has
    the stock parameters plus the block's; strides and the eval output are those of YOLOv8n.

    Args:
        name (str): The YAML module name (registered name or alias).
        args (list): The row's arguments.

    Returns:
        (tuple[nn.Module, nn.Module]): The model and the block.
    """
    import yolo_attn  # registers the blocks with the parser
    from ultralytics.nn.tasks import DetectionModel

    cls = yolo_attn.BLOCKS.get(name)
    model = DetectionModel(yolov8n_dict([-1, 1, name, args]), verbose=False)
    blocks = [m for m in model.modules() if isinstance(m, yolo_attn.AttentionGate)]
    assert len(blocks) == 1 and type(blocks[0]) is cls
    block = blocks[0]
    assert block is model.model[10] and block.c1 == 256  # SPPF's width at scale n: 1024 * 0.25
    assert n_params(model) == stock_yolov8n_params() + n_params(block)
    assert model.stride.tolist() == [8.0, 16.0, 32.0]
    with torch.no_grad():
        y = model.eval()(torch.rand(1, 3, 64, 64))
    y = y[0] if isinstance(y, (list, tuple)) else y
    assert y.shape == (1, 84, 84) and torch.isfinite(y).all()
    return model, block


def assert_names_free(cls: type) -> None:
    """Check that the block's name and aliases are not Ultralytics' own module names (the kit shadows nothing).

    Args:
        cls (type): The block class.
    """
    import ultralytics.nn.modules as umodules
    import ultralytics.nn.tasks as tasks

    import yolo_attn

    for n in (yolo_attn.BLOCKS.canonical(cls.__name__), *cls.aliases):
        assert n not in vars(umodules), f"{n} is an Ultralytics module name"
        current = vars(tasks).get(n)
        assert current is None or getattr(current, "block", None) is cls, f"{n} is taken in ultralytics.nn.tasks"
