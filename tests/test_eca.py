"""ECA against the authors' ``eca_layer`` (BangguWu/ECANet) and the paper's kernel-size rule, with its own weights."""

from __future__ import annotations

import math

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

from yolo_attn.modules import ECA


class EcaLayerReference(nn.Module):
    """The authors' ``eca_layer`` (ECANet, ``models/eca_module.py``), verbatim apart from names."""

    def __init__(self, channel: int, k_size: int = 3):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv1d(1, 1, kernel_size=k_size, padding=(k_size - 1) // 2, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.avg_pool(x)
        y = self.conv(y.squeeze(-1).transpose(-1, -2)).transpose(-1, -2).unsqueeze(-1)
        y = self.sigmoid(y)
        return x * y.expand_as(x)


def paper_k(c: int, gamma: float = 2, b: float = 1) -> int:
    """Kernel size psi(C) as the authors' ECA-ResNet code computes it."""
    t = int(abs((math.log(c, 2) + b) / gamma))
    return t if t % 2 else t + 1


def reference(block: ECA) -> EcaLayerReference:
    """The authors' layer with the block's kernel size and weights."""
    ref = EcaLayerReference(block.c1, block.k)
    ref.load_state_dict(block.state_dict())  # the same key: conv.weight
    return ref


@pytest.mark.parametrize("c", [1, 8, 16, 24, 64, 256, 512, 1024, 2048])
def test_kernel_size_rule(c):
    assert ECA(c).k == paper_k(c)
    assert ECA(c, gamma=3, b=2).k == paper_k(c, 3, 2)
    assert ECA(c, k=7).k == 7


def test_kernel_sizes_from_the_paper():
    assert [ECA(c).k for c in (64, 256)] == [3, 5]  # papers.md: C = 64 -> 3, C = 256 -> 5


@pytest.mark.parametrize("c", [8, 16, 24, 64, 256])
@pytest.mark.parametrize("k", [None, 1, 5])
def test_matches_authors_code(c, k):
    block = randomise_(ECA(c, k), seed=c)
    x = torch.randn(2, c, 7, 11) * 2
    with torch.no_grad():
        torch.testing.assert_close(block(x), reference(block)(x), rtol=1e-5, atol=1e-5)
    y = block(x)  # autograd path: same numbers
    torch.testing.assert_close(y, reference(block)(x), rtol=1e-5, atol=1e-5)
    assert y.shape == x.shape and y.requires_grad


@pytest.mark.parametrize("c", [8, 24, 256])
def test_1x1_maps(c):
    block = randomise_(ECA(c), seed=1)
    for b in (1, 2):
        x = torch.randn(b, c, 1, 1) * 3
        with torch.no_grad():
            y = block(x)
        assert y.shape == x.shape and torch.isfinite(y).all()
        torch.testing.assert_close(y, reference(block)(x), rtol=1e-5, atol=1e-5)


def test_fp16():
    x = torch.randn(2, 64, 40, 40) * 20
    y16, y32 = fp16_forward(ECA, 64, "eval", x)
    assert y16.dtype == torch.float16 and torch.isfinite(y16).all()
    torch.testing.assert_close(y16.float(), y32, rtol=1e-2, atol=5e-2)


@pytest.mark.parametrize("c", [8, 64, 256, 2048])
def test_param_count_is_k(c):
    block = ECA(c)
    assert block.params == "k" and n_params(block) == block.k == paper_k(c)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_autocast(mode):
    assert_autocast_close(ECA, 64, mode)


@pytest.mark.filterwarnings(*ONNX_WARNINGS)
@pytest.mark.parametrize("c", [24, 256])
def test_onnx_parity(tmp_path, c):
    block = randomise_(ECA(c), seed=2).eval()
    onnx_parity(block, torch.randn(2, c, 9, 13), tmp_path)


@pytest.mark.parametrize(
    "kwargs, arg",
    [({"k": 4}, "k"), ({"k": 0}, "k"), ({"k": 17}, "k"), ({"k": 2.5}, "k"), ({"gamma": 0}, "gamma"), ({"b": -1}, "b")],
)
def test_bad_arguments(kwargs, arg):
    with pytest.raises(ValueError, match=rf"ECA: argument '{arg}' must be"):
        ECA(64, **kwargs)
    with pytest.raises(ValueError, match=r"ECA: argument 'c1'"):
        ECA(0)


def test_prune_keeps_shapes_and_is_declared_inexact():
    block = randomise_(ECA(16, k=3), seed=3).eval()
    keep = torch.tensor([0, 1, 2, 5, 6, 7, 12, 15])
    x = torch.randn(2, 16, 5, 5)
    full, small = assert_prune_consistent(block, keep, x)
    assert not ECA.prune_exact and ECA.can_prune()
    # channels 0, 1 and 6 keep both neighbours (or the padding): their gate is unchanged; the others see new ones
    torch.testing.assert_close(small[:, [0, 1, 4]], full[:, [0, 1, 4]], rtol=1e-6, atol=1e-6)
    assert not torch.allclose(small, full, atol=1e-4)


@pytest.mark.parametrize("name, args", [("ECA", []), ("ECAAttention", [5])])
def test_yaml_row_builds(name, args):
    _, block = yolov8n_with_row(name, args)
    assert block.k == (args[0] if args else paper_k(256))


def test_names_do_not_shadow_ultralytics():
    assert_names_free(ECA)
