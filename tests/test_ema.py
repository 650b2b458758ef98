"""EMA against the authors' ``EMA`` (YOLOonMe/EMA-attention-module) with its own weights; the group rule; 1x1 maps."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
from block_checks import (
    ONNX_WARNINGS,
    assert_autocast_close,
    assert_names_free,
    fp16_forward,
    n_params,
    onnx_parity,
    randomise_,
    yolov8n_with_row,
)

from yolo_attn.modules import EMA


class EMAReference(nn.Module):
    """The authors' EMA, verbatim apart from the name (``factor`` is the group count, used as given)."""

    def __init__(self, channels, factor=32):
        super().__init__()
        self.groups = factor
        assert channels // self.groups > 0
        self.softmax = nn.Softmax(-1)
        self.agp = nn.AdaptiveAvgPool2d((1, 1))
        self.pool_h = nn.AdaptiveAvgPool2d((None, 1))
        self.pool_w = nn.AdaptiveAvgPool2d((1, None))
        self.gn = nn.GroupNorm(channels // self.groups, channels // self.groups)
        self.conv1x1 = nn.Conv2d(channels // self.groups, channels // self.groups, kernel_size=1, stride=1, padding=0)
        self.conv3x3 = nn.Conv2d(channels // self.groups, channels // self.groups, kernel_size=3, stride=1, padding=1)

    def forward(self, x):
        b, c, h, w = x.size()
        group_x = x.reshape(b * self.groups, -1, h, w)  # b*g,c//g,h,w
        x_h = self.pool_h(group_x)
        x_w = self.pool_w(group_x).permute(0, 1, 3, 2)
        hw = self.conv1x1(torch.cat([x_h, x_w], dim=2))
        x_h, x_w = torch.split(hw, [h, w], dim=2)
        x1 = self.gn(group_x * x_h.sigmoid() * x_w.permute(0, 1, 3, 2).sigmoid())
        x2 = self.conv3x3(group_x)
        x11 = self.softmax(self.agp(x1).reshape(b * self.groups, -1, 1).permute(0, 2, 1))
        x12 = x2.reshape(b * self.groups, c // self.groups, -1)  # b*g, c//g, hw
        x21 = self.softmax(self.agp(x2).reshape(b * self.groups, -1, 1).permute(0, 2, 1))
        x22 = x1.reshape(b * self.groups, c // self.groups, -1)  # b*g, c//g, hw
        weights = (torch.matmul(x11, x12) + torch.matmul(x21, x22)).reshape(b * self.groups, 1, h, w)
        return (group_x * weights.sigmoid()).reshape(b, c, h, w)


def reference(block: EMA) -> EMAReference:
    """The authors' module with the block's group count and weights (the same state_dict keys), in float64."""
    ref = EMAReference(block.c1, block.groups)
    ref.load_state_dict(block.state_dict())
    return ref.train(block.training).double()


def groups_rule(c: int, factor: int) -> int:
    """The documented rule, by brute force: largest divisor of c that is <= factor with >= 2 channels per group."""
    ok = [g for g in range(1, c + 1) if c % g == 0 and g <= factor and c // g >= 2]
    return max(ok, default=1)


@pytest.mark.parametrize(
    "c, factor, groups",
    [(1, 32, 1), (2, 32, 1), (3, 32, 1), (8, 32, 4), (16, 32, 8), (24, 32, 12), (64, 32, 32), (256, 32, 32),
     (96, 32, 32), (80, 32, 20), (1024, 32, 32), (64, 8, 8), (7, 32, 1)],
)  # fmt: skip
def test_group_rule(c, factor, groups):
    block = EMA(c, factor)
    assert block.groups == groups == groups_rule(c, factor)
    assert c % block.groups == 0 and (c // block.groups >= 2 or c < 2)


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("c, factor", [(8, 32), (16, 32), (24, 32), (64, 32), (256, 32), (256, 8), (3, 32)])
def test_matches_authors_code(c, factor, mode):
    block = getattr(randomise_(EMA(c, factor), seed=c), mode)()
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


@pytest.mark.parametrize("c", [8, 16, 24, 64, 256])
def test_param_count_formula(c):
    block = EMA(c)
    cg = c // block.groups
    assert block.params == "10*cg^2 + 4*cg, cg = C / G"
    assert n_params(block) == 10 * cg**2 + 4 * cg


@pytest.mark.parametrize("c", [2, 8, 24, 256])
def test_1x1_maps(c):
    """The authors' GroupNorm raises on one value per group when B * G = 1; the block uses the shift beta there."""
    block = randomise_(EMA(c), seed=1).double()
    for mode in ("eval", "train"):
        getattr(block, mode)()
        for b in (1, 2):
            x = torch.randn(b, c, 1, 1, dtype=torch.float64) * 3
            y = block(x)
            assert y.shape == x.shape and torch.isfinite(y).all()
            if b * block.groups > 1:  # the authors' code runs: the same numbers
                torch.testing.assert_close(y, reference(block)(x), rtol=1e-5, atol=1e-5)
            else:
                with pytest.raises(ValueError, match="more than 1 value"):
                    reference(block)(x)
            # on 1x1 the normalised value is 0: x1 = beta, so the gate depends on beta and the 3x3 branch only
            cg = c // block.groups
            gx = x.reshape(b * block.groups, cg, 1, 1)
            x1 = block.gn.bias.view(1, cg, 1, 1).expand_as(gx)
            x2 = block.conv3x3(gx)
            d1, d2 = x1.mean((2, 3)).softmax(-1), x2.mean((2, 3)).softmax(-1)
            m = (d1 * x2.flatten(1)).sum(1) + (d2 * x1.flatten(1)).sum(1)
            torch.testing.assert_close(y, (gx * m.sigmoid().view(-1, 1, 1, 1)).reshape(x.shape), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_fp16(mode):
    x = torch.randn(2, 64, 40, 40)
    y16, y32 = fp16_forward(EMA, 64, mode, x * 2)
    assert y16.dtype == torch.float16 and torch.isfinite(y16).all()
    torch.testing.assert_close(y16.float(), y32, rtol=1e-2, atol=5e-2)
    y16, _ = fp16_forward(EMA, 64, mode, x * 50)  # large activations: no overflow
    assert torch.isfinite(y16).all()


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_autocast(mode):
    assert_autocast_close(EMA, 64, mode)


@pytest.mark.filterwarnings(*ONNX_WARNINGS)
@pytest.mark.parametrize("c", [24, 256])
def test_onnx_parity(tmp_path, c):
    block = randomise_(EMA(c), seed=2).eval()
    onnx_parity(block, torch.randn(2, c, 9, 13), tmp_path)


@pytest.mark.parametrize("value", [0, -2, 65, 2.5, None])
def test_bad_arguments(value):
    with pytest.raises(ValueError, match=r"EMA: argument 'factor' must be"):
        EMA(64, value)


def test_not_sliceable():
    """The groups share their convolutions: the pruner keeps EMA's channels (declared, not implemented)."""
    assert not EMA.can_prune() and not EMA.prune_exact
    with pytest.raises(NotImplementedError):
        EMA(16).prune_channels(torch.arange(8))


@pytest.mark.parametrize("name, args", [("EMA", []), ("EMA_attention", [8])])
def test_yaml_row_builds(name, args):
    _, block = yolov8n_with_row(name, args)
    assert block.factor == (args[0] if args else 32) and block.groups == block.factor


def test_names_do_not_shadow_ultralytics():
    assert_names_free(EMA)
