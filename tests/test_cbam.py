"""CBAMAttention against the authors' CBAM (Jongchan/attention-module, ``MODELS/cbam.py``) with its own weights."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
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

from yolo_attn import BLOCKS
from yolo_attn.modules import CBAMAttention

# ----------------------------------------------------------------------------------------------------------------------
# The authors' code, verbatim apart from names and one parameter: the MLP's hidden width is passed in (the authors
# compute gate_channels // reduction_ratio; the block floors it at 8 as SE does).
# ----------------------------------------------------------------------------------------------------------------------


class BasicConv(nn.Module):
    def __init__(self, in_planes, out_planes, kernel_size, stride=1, padding=0, relu=True, bn=True, bias=False):
        super().__init__()
        self.conv = nn.Conv2d(in_planes, out_planes, kernel_size=kernel_size, stride=stride, padding=padding, bias=bias)
        self.bn = nn.BatchNorm2d(out_planes, eps=1e-5, momentum=0.01, affine=True) if bn else None
        self.relu = nn.ReLU() if relu else None

    def forward(self, x):
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.relu is not None:
            x = self.relu(x)
        return x


class Flatten(nn.Module):
    def forward(self, x):
        return x.view(x.size(0), -1)


class ChannelGate(nn.Module):
    def __init__(self, gate_channels, hidden):
        super().__init__()
        self.mlp = nn.Sequential(
            Flatten(), nn.Linear(gate_channels, hidden), nn.ReLU(), nn.Linear(hidden, gate_channels)
        )

    def forward(self, x):
        channel_att_sum = None
        for pool_type in ("avg", "max"):
            if pool_type == "avg":
                pool = F.avg_pool2d(x, (x.size(2), x.size(3)), stride=(x.size(2), x.size(3)))
            else:
                pool = F.max_pool2d(x, (x.size(2), x.size(3)), stride=(x.size(2), x.size(3)))
            channel_att_raw = self.mlp(pool)
            channel_att_sum = channel_att_raw if channel_att_sum is None else channel_att_sum + channel_att_raw
        scale = torch.sigmoid(channel_att_sum).unsqueeze(2).unsqueeze(3).expand_as(x)
        return x * scale


class ChannelPool(nn.Module):
    def forward(self, x):
        return torch.cat((torch.max(x, 1)[0].unsqueeze(1), torch.mean(x, 1).unsqueeze(1)), dim=1)


class SpatialGate(nn.Module):
    def __init__(self, kernel_size=7):
        super().__init__()
        self.compress = ChannelPool()
        self.spatial = BasicConv(2, 1, kernel_size, stride=1, padding=(kernel_size - 1) // 2, relu=False)

    def forward(self, x):
        x_out = self.spatial(self.compress(x))
        return x * torch.sigmoid(x_out)


class CBAMReference(nn.Module):
    def __init__(self, gate_channels, hidden, kernel_size=7):
        super().__init__()
        self.ChannelGate = ChannelGate(gate_channels, hidden)
        self.SpatialGate = SpatialGate(kernel_size)

    def forward(self, x):
        return self.SpatialGate(self.ChannelGate(x))


def reference(block: CBAMAttention) -> CBAMReference:
    """The authors' CBAM with the block's weights (their ChannelPool stacks [max, mean], the block [mean, max])."""
    ref = CBAMReference(block.c1, block.rd, block.k)
    ref.train(block.training)
    with torch.no_grad():
        mlp = ref.ChannelGate.mlp
        for theirs, ours in ((mlp[1], block.fc1), (mlp[3], block.fc2)):
            theirs.weight.copy_(ours.weight)
            theirs.bias.copy_(ours.bias)
        ref.SpatialGate.spatial.conv.weight.copy_(block.conv.weight[:, [1, 0]])
        ref.SpatialGate.spatial.bn.load_state_dict(block.bn.state_dict())
    return ref


# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("c, k", [(8, 7), (16, 3), (24, 7), (64, 7), (256, 7)])
def test_matches_authors_code(c, k, mode):
    block = getattr(randomise_(CBAMAttention(c, k=k), seed=c), mode)()
    ref = reference(block).double()  # float64: the comparison sees the formula, not float32 summation order
    x = torch.randn(2, c, 9, 13, dtype=torch.float64) * 2
    y_ref = ref(x)
    block64 = copy.deepcopy(block).double()
    torch.testing.assert_close(block64(x), y_ref, rtol=1e-5, atol=1e-5)  # autograd path
    with torch.no_grad():  # in-place fast path
        torch.testing.assert_close(block64(x), y_ref, rtol=1e-5, atol=1e-5)
    y = block(x.float())
    torch.testing.assert_close(y.double(), y_ref, rtol=1e-4, atol=1e-4)
    y.square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in block.parameters())


@pytest.mark.parametrize("c, rd", [(8, 8), (16, 8), (24, 8), (64, 8), (256, 16), (512, 32), (1024, 64)])
def test_hidden_width_floor_as_se(c, rd):
    block = CBAMAttention(c)
    assert block.rd == rd == BLOCKS.get("SE")(c).rd
    assert block.fc1.out_features == rd and block.fc2.in_features == rd


@pytest.mark.parametrize("c", [8, 16, 24, 64, 256])
@pytest.mark.parametrize("k", [3, 7])
def test_param_count_formula(c, k):
    block = CBAMAttention(c, k=k)
    rd = block.rd
    assert block.params.startswith("2*C*rd + rd + C + 2*k^2 + 2,")
    assert n_params(block) == 2 * c * rd + rd + c + 2 * k**2 + 2


@pytest.mark.parametrize("c", [8, 24, 256])
def test_1x1_maps(c):
    block = randomise_(CBAMAttention(c), seed=1).double()
    for mode, batches in (("eval", (1, 2)), ("train", (2,))):  # train: BatchNorm needs > 1 value (B > 1 on 1x1)
        getattr(block, mode)()
        for b in batches:
            x = torch.randn(b, c, 1, 1, dtype=torch.float64) * 3
            y_ref = reference(block).double()(x)
            y = block(x)
            assert y.shape == x.shape and torch.isfinite(y).all()
            torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_fp16(mode):
    x = torch.randn(2, 64, 40, 40)
    y16, y32 = fp16_forward(CBAMAttention, 64, mode, x * 2)
    assert y16.dtype == torch.float16 and torch.isfinite(y16).all()
    torch.testing.assert_close(y16.float(), y32, rtol=1e-2, atol=5e-2)
    # large activations: no overflow (the 7x7 logits reach ~1e4; fp16 rounding then moves individual gates, not NaN)
    y16, _ = fp16_forward(CBAMAttention, 64, mode, x * 50)
    assert torch.isfinite(y16).all()


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_autocast(mode):
    assert_autocast_close(CBAMAttention, 64, mode)


@pytest.mark.filterwarnings(*ONNX_WARNINGS)
def test_onnx_parity(tmp_path):
    block = randomise_(CBAMAttention(24), seed=2).eval()
    onnx_parity(block, torch.randn(2, 24, 9, 13), tmp_path)


@pytest.mark.parametrize(
    "kwargs, arg",
    [
        ({"reduction": 0}, "reduction"),
        ({"reduction": 65}, "reduction"),  # above the channel count
        ({"k": 4}, "k"),
        ({"k": 17}, "k"),
        ({"divisor": 0}, "divisor"),
    ],
)
def test_bad_arguments(kwargs, arg):
    with pytest.raises(ValueError, match=rf"CBAMAttention: argument '{arg}' must be"):
        CBAMAttention(64, **kwargs)


def test_prune_keeps_shapes_and_mean_rescaled():
    block = randomise_(CBAMAttention(24), seed=3).eval()
    keep = torch.tensor([0, 2, 3, 7, 11, 12, 20, 23])
    assert not CBAMAttention.prune_exact and CBAMAttention.can_prune()
    # with the kept channels >= 0 the channel max ignores the removed zeros, and the mean is rescaled: equal gates
    full, small = assert_prune_consistent(block, keep, torch.rand(2, 24, 6, 6))
    torch.testing.assert_close(small, full, rtol=1e-5, atol=1e-5)
    # negative everywhere: the removed channels' zeros win the max, so slicing is not exact (as declared)
    full, small = assert_prune_consistent(block, keep, -torch.rand(2, 24, 6, 6) - 0.1)
    assert not torch.allclose(small, full, atol=1e-4)


@pytest.mark.parametrize("args", [[], [8, 3]])
def test_yaml_row_builds(args):
    _, block = yolov8n_with_row("CBAMAttention", args)
    assert (block.reduction, block.k) == ((8, 3) if args else (16, 7))


def test_names_do_not_shadow_ultralytics_cbam():
    import ultralytics.nn.modules as umodules

    assert_names_free(CBAMAttention)
    assert "CBAM" not in BLOCKS and umodules.CBAM is not CBAMAttention
    # Ultralytics' CBAM: avg-pool -> full C -> C 1x1 conv, no reduction: C*C + C + 2*7*7 parameters, unlike this one
    assert n_params(umodules.CBAM(64)) == 64 * 64 + 64 + 98 != n_params(CBAMAttention(64))
