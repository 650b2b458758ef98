"""CoordAtt against the authors' ``CoordAtt`` (Andrew-Qibin/CoordAttention, ``coordatt.py``) with its own weights."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
from block_checks import (
    ONNX_WARNINGS,
    assert_autocast_close,
    assert_names_free,
    assert_prune_consistent,
    fp16_forward,
    n_params,
    onnx_parity,
    randomise_,
    yolov8n_with_row,
)

from yolo_attn.modules import CoordAtt

# The authors' code, verbatim apart from names.


class h_sigmoid(nn.Module):  # noqa: N801
    def __init__(self, inplace=True):
        super().__init__()
        self.relu = nn.ReLU6(inplace=inplace)

    def forward(self, x):
        return self.relu(x + 3) / 6


class h_swish(nn.Module):  # noqa: N801
    def __init__(self, inplace=True):
        super().__init__()
        self.sigmoid = h_sigmoid(inplace=inplace)

    def forward(self, x):
        return x * self.sigmoid(x)


class CoordAttReference(nn.Module):
    def __init__(self, inp, oup, reduction=32):
        super().__init__()
        self.pool_h = nn.AdaptiveAvgPool2d((None, 1))
        self.pool_w = nn.AdaptiveAvgPool2d((1, None))
        mip = max(8, inp // reduction)
        self.conv1 = nn.Conv2d(inp, mip, kernel_size=1, stride=1, padding=0)
        self.bn1 = nn.BatchNorm2d(mip)
        self.act = h_swish()
        self.conv_h = nn.Conv2d(mip, oup, kernel_size=1, stride=1, padding=0)
        self.conv_w = nn.Conv2d(mip, oup, kernel_size=1, stride=1, padding=0)

    def forward(self, x):
        identity = x
        n, c, h, w = x.size()
        x_h = self.pool_h(x)
        x_w = self.pool_w(x).permute(0, 1, 3, 2)
        y = torch.cat([x_h, x_w], dim=2)
        y = self.conv1(y)
        y = self.bn1(y)
        y = self.act(y)
        x_h, x_w = torch.split(y, [h, w], dim=2)
        x_w = x_w.permute(0, 1, 3, 2)
        a_h = self.conv_h(x_h).sigmoid()
        a_w = self.conv_w(x_w).sigmoid()
        return identity * a_w * a_h


def reference(block: CoordAtt) -> CoordAttReference:
    """The authors' module with the block's reduction and weights (the same state_dict keys), in float64."""
    ref = CoordAttReference(block.c1, block.c1, int(block.reduction))
    ref.load_state_dict(block.state_dict())
    return ref.train(block.training).double()


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("c", [8, 16, 24, 64, 256, 512])
def test_matches_authors_code(c, mode):
    block = getattr(randomise_(CoordAtt(c), seed=c), mode)()
    x = torch.randn(2, c, 9, 13, dtype=torch.float64) * 2
    y_ref = reference(block)(x)  # float64: the comparison sees the formula, not float32 summation order
    block64 = copy.deepcopy(block).double()
    torch.testing.assert_close(block64(x), y_ref, rtol=1e-5, atol=1e-5)  # autograd path
    with torch.no_grad():  # in-place fast path
        torch.testing.assert_close(block64(x), y_ref, rtol=1e-5, atol=1e-5)
    y = block(x.float())
    torch.testing.assert_close(y.double(), y_ref, rtol=1e-4, atol=1e-4)
    y.square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in block.parameters())


@pytest.mark.parametrize(
    "c, r, mip", [(8, 32, 8), (64, 32, 8), (256, 32, 8), (512, 32, 16), (1024, 32, 32), (64, 4, 16)]
)
def test_bottleneck_width(c, r, mip):
    assert CoordAtt(c, r).mip == mip == max(8, c // r)


@pytest.mark.parametrize("c", [8, 16, 24, 64, 256, 1024])
def test_param_count_formula(c):
    block = CoordAtt(c)
    mip = block.mip
    assert block.params == "3*C*mip + 3*mip + 2*C, mip = max(8, C // r)"
    assert n_params(block) == 3 * c * mip + 3 * mip + 2 * c


@pytest.mark.parametrize("c", [8, 24, 256])
def test_1x1_maps(c):
    block = randomise_(CoordAtt(c), seed=1).double()
    for mode in ("eval", "train"):  # train with B = 1: the bottleneck BN sees H + W = 2 values per channel
        getattr(block, mode)()
        for b in (1, 2):
            x = torch.randn(b, c, 1, 1, dtype=torch.float64) * 3
            y_ref = reference(block)(x)
            y = block(x)
            assert y.shape == x.shape and torch.isfinite(y).all()
            torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_fp16(mode):
    x = torch.randn(2, 64, 40, 40)
    y16, y32 = fp16_forward(CoordAtt, 64, mode, x * 2)
    assert y16.dtype == torch.float16 and torch.isfinite(y16).all()
    torch.testing.assert_close(y16.float(), y32, rtol=1e-2, atol=5e-2)
    y16, _ = fp16_forward(CoordAtt, 64, mode, x * 50)  # large activations: no overflow
    assert torch.isfinite(y16).all()


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_autocast(mode):
    assert_autocast_close(CoordAtt, 64, mode)


@pytest.mark.filterwarnings(*ONNX_WARNINGS)
def test_onnx_parity(tmp_path):
    block = randomise_(CoordAtt(24), seed=2).eval()
    onnx_parity(block, torch.randn(2, 24, 9, 13), tmp_path)


@pytest.mark.parametrize("value", [0, -1, 65, float("nan"), True])
def test_bad_arguments(value):
    with pytest.raises(ValueError, match=r"CoordAtt: argument 'reduction' must be"):
        CoordAtt(64, value)


def test_prune_is_exact():
    block = randomise_(CoordAtt(24), seed=3).eval()
    keep = torch.tensor([0, 2, 3, 7, 11, 12, 20, 23])
    assert CoordAtt.prune_exact and CoordAtt.can_prune()
    full, small = assert_prune_consistent(block, keep, torch.randn(2, 24, 6, 7))
    torch.testing.assert_close(small, full, rtol=1e-5, atol=1e-5)
    assert small.shape == (2, 8, 6, 7)


@pytest.mark.parametrize("name, args", [("CoordAtt", []), ("CoordAttention", [16])])
def test_yaml_row_builds(name, args):
    _, block = yolov8n_with_row(name, args)
    assert block.reduction == (args[0] if args else 32) and block.mip == max(8, 256 // block.reduction)


def test_names_do_not_shadow_ultralytics():
    assert_names_free(CoordAtt)
