"""Behaviour tests for the attention blocks (NAM, SimAM, SE, DAS).

Every reference implementation below is written independently from the paper's formula (or, for NAM's channel
gate, from the authors' published code) and uses the block's own weights; none calls the blocks' helper functions.
"""

from __future__ import annotations

import math
import os
import pickle
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from yolo_attn.modules import DAS, NAM, SE, SimAM

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Block factories used by the generic tests: name -> callable(c1) -> module.
FACTORIES = {
    "NAM": lambda c: NAM(c),
    "NAM-spatial": lambda c: NAM(c, spatial=True),
    "SimAM": lambda c: SimAM(c),
    "SE": lambda c: SE(c),
    "DAS": lambda c: DAS(c),
}


def n_params(m: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in m.parameters())


def randomise_(m: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter and BN buffer non-trivial values so reference comparisons are not degenerate."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.startswith("offset."):
                continue  # DAS offsets are set explicitly where needed (their scale matters)
            p.copy_(torch.randn(p.shape, generator=g) * 0.5 + (1.0 if name.endswith("weight") and p.dim() == 1 else 0.0))
        for name, b in m.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.3)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) * 1.5 + 0.5)
    return m


# ----------------------------------------------------------------------------------------------------------------------
# Independent references
# ----------------------------------------------------------------------------------------------------------------------


class Channel_Att(nn.Module):
    """NAM channel attention, verbatim structure of the authors' reference code (NAM-in-YOLOv8 write-up)."""

    def __init__(self, channels, t=16):
        super(Channel_Att, self).__init__()
        self.channels = channels
        self.bn2 = nn.BatchNorm2d(self.channels, affine=True)

    def forward(self, x):
        residual = x
        x = self.bn2(x)
        weight_bn = self.bn2.weight.data.abs() / torch.sum(self.bn2.weight.data.abs())
        x = x.permute(0, 2, 3, 1).contiguous()
        x = torch.mul(weight_bn, x)
        x = x.permute(0, 3, 1, 2).contiguous()
        x = torch.sigmoid(x) * residual
        return x


def nam_spatial_reference(x: torch.Tensor, lam: torch.Tensor, beta: torch.Tensor, eps: float) -> torch.Tensor:
    """Pixel-normalisation gate from nam.py's docstring: normalise each pixel over C, lambda-weighted sum, sigmoid."""
    mean = x.mean(dim=1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=1, keepdim=True)  # biased variance, as a normalisation layer
    z = (x - mean) / torch.sqrt(var + eps) * lam.view(1, -1, 1, 1) + beta.view(1, -1, 1, 1)
    w = lam.abs() / lam.abs().sum()
    ms = torch.sigmoid((z * w.view(1, -1, 1, 1)).sum(dim=1, keepdim=True))
    return ms * x


def simam_reference(x: torch.Tensor, lam: float) -> torch.Tensor:
    """SimAM closed form in float64: d=(x-mu)^2, v=sum(d)/n, n=H*W-1, E_inv=d/(4(v+lambda))+0.5, y=x*sigmoid(E_inv)."""
    x = x.double()
    n = x.shape[2] * x.shape[3] - 1
    mu = x.mean(dim=(2, 3), keepdim=True)
    d = (x - mu) ** 2
    v = d.sum(dim=(2, 3), keepdim=True) / n
    e_inv = d / (4 * (v + lam)) + 0.5
    return x * torch.sigmoid(e_inv)


def se_reference(x: torch.Tensor, se: SE) -> torch.Tensor:
    """GAP -> FC -> ReLU -> FC -> sigmoid -> scale, with plain matmuls on the block's weights, in float64."""
    x = x.double()
    w1 = se.fc1.weight.detach().double().flatten(1)  # (rd, C)
    b1 = se.fc1.bias.detach().double()
    w2 = se.fc2.weight.detach().double().flatten(1)  # (C, rd)
    b2 = se.fc2.bias.detach().double()
    s = x.mean(dim=(2, 3))  # (B, C)
    h = torch.clamp(s @ w1.T + b1, min=0)
    g = torch.sigmoid(h @ w2.T + b2)  # (B, C)
    return x * g[:, :, None, None]


class DASReference(nn.Module):
    """DAS built from stock modules: DW -> PW -> InstanceNorm2d -> GELU -> offset conv -> DeformConv2d -> LayerNorm."""

    def __init__(self, das: DAS):
        super().__init__()
        c, hid, k = das.weight.shape[0], das.hidden, das.k
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
        self.pw = nn.Conv2d(c, hid, 1, bias=False)
        self.inorm = nn.InstanceNorm2d(hid, affine=True)
        self.offset = nn.Conv2d(hid, 2 * k * k, 3, padding=1)
        self.dcn = torchvision.ops.DeformConv2d(hid, c, k, padding=k // 2)
        self.ln = nn.LayerNorm(c)
        with torch.no_grad():
            self.dw.weight.copy_(das.dw.weight)
            self.pw.weight.copy_(das.pw.weight)
            self.inorm.weight.copy_(das.norm.weight)
            self.inorm.bias.copy_(das.norm.bias)
            self.offset.weight.copy_(das.offset.weight)
            self.offset.bias.copy_(das.offset.bias)
            self.dcn.weight.copy_(das.weight)
            self.dcn.bias.copy_(das.bias)
            self.ln.weight.copy_(das.ln.weight)
            self.ln.bias.copy_(das.ln.bias)

    def tail(self, h: torch.Tensor, x: torch.Tensor, zero_offsets: bool = False) -> torch.Tensor:
        off = self.offset(h)
        if zero_offsets:
            off = torch.zeros_like(off)
        g = self.dcn(h, off)
        g = self.ln(g.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return x * torch.sigmoid(g)

    def forward(self, x: torch.Tensor, zero_offsets: bool = False) -> torch.Tensor:
        h = F.gelu(self.inorm(self.pw(self.dw(x))))
        return self.tail(h, x, zero_offsets)


def das_with_offsets(c: int = 16, alpha: float = 0.25, seed: int = 0, offset_std: float = 1.5) -> DAS:
    """A DAS with random weights and a non-zero offset conv whose offsets are a few pixels, fractional."""
    torch.manual_seed(seed)
    m = randomise_(DAS(c, alpha=alpha), seed)
    fan_in = m.offset.weight[0].numel()
    with torch.no_grad():
        m.offset.weight.normal_(0.0, offset_std / math.sqrt(fan_in))
        m.offset.bias.normal_(0.0, 0.5)
    return m


# ----------------------------------------------------------------------------------------------------------------------
# Shape contract
# ----------------------------------------------------------------------------------------------------------------------

SHAPES_HW = [(8, 8), (7, 5), (13, 20), (1, 6), (9, 1)]


@pytest.mark.parametrize("c", [8, 16, 64])
@pytest.mark.parametrize("name", list(FACTORIES))
def test_shape_preserved(name, c):
    torch.manual_seed(0)
    m = FACTORIES[name](c)
    for mode in ("train", "eval"):
        getattr(m, mode)()
        for b in (1, 2):
            for h, w in SHAPES_HW:
                x = torch.randn(b, c, h, w)
                with torch.no_grad():
                    y = m(x)
                assert y.shape == x.shape, (name, mode, x.shape)
                assert y.dtype == x.dtype
                assert torch.isfinite(y).all(), (name, mode, x.shape)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_gate_is_the_multiplier(name):
    """``forward(x) == x * gate(x)`` with the gate in (0, 1): attention maps and fused paths rely on it."""
    torch.manual_seed(0)
    m = randomise_(FACTORIES[name](16), 0)
    for mode in ("train", "eval"):
        getattr(m, mode)()
        x = torch.randn(2, 16, 9, 7)
        with torch.no_grad():
            g, y = m.gate(x), m(x)
        assert g.shape in {(2, 16, 9, 7), (2, 16, 1, 1)}, (name, g.shape)
        assert ((g > 0) & (g < 1)).all(), name
        torch.testing.assert_close(y, x * g, rtol=0, atol=1e-6)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_das_shape_other_kernel_sizes(k):
    torch.manual_seed(0)
    m = DAS(16, k=k)
    x = torch.randn(2, 16, 11, 6)
    assert m(x).shape == x.shape


# ----------------------------------------------------------------------------------------------------------------------
# Parameter counts
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("c", [1, 8, 16, 64, 255])
def test_param_counts_simam_nam(c):
    assert n_params(SimAM(c)) == 0
    assert n_params(NAM(c)) == 2 * c
    assert n_params(NAM(c, spatial=True)) == 4 * c


# Expected reduced widths, computed by hand from the documented rule
# rd = max(8, round-half-up(C/r to a multiple of 8)), +8 if that is below 0.9 * C/r.
SE_CASES = [
    (16, 4, 8),  # C/r = 4    -> 8 (floor at 8)
    (16, 16, 8),  # 1         -> 8
    (32, 4, 8),  # 8          -> 8
    (32, 16, 8),  # 2         -> 8
    (64, 4, 16),  # 16        -> 16
    (64, 16, 8),  # 4         -> 8
    (256, 4, 64),  # 64       -> 64
    (256, 16, 16),  # 16      -> 16
    (1024, 4, 256),  # 256    -> 256
    (1024, 16, 64),  # 64     -> 64
    (76, 4, 24),  # 19 -> nearest multiple 16, but 16 < 0.9 * 19 = 17.1 -> 24
    (180, 16, 16),  # 11.25 -> 8, but 8 < 10.125 -> 16
    (88, 4, 24),  # 22 -> 24 (rounds up)
    (200, 16, 16),  # 12.5 -> 16
]


@pytest.mark.parametrize("c,r,rd", SE_CASES)
def test_se_reduced_width_and_param_count(c, r, rd):
    m = SE(c, reduction=r)
    assert m.fc1.out_channels == rd and m.fc2.in_channels == rd
    assert n_params(m) == 2 * c * rd + rd + c


# (C, alpha, hidden) with hidden = max(1, round(alpha * C)), written out by hand.
DAS_CASES = [(8, 0.2, 2), (16, 0.2, 3), (64, 0.2, 13), (64, 0.1, 6), (3, 0.1, 1), (32, 1.0, 32), (20, 0.25, 5)]


@pytest.mark.parametrize("c,alpha,hid", DAS_CASES)
def test_das_param_count(c, alpha, hid):
    m = DAS(c, alpha=alpha)
    assert m.hidden == hid
    expected = 9 * c + c * hid + 2 * hid + 18 * 9 * hid + 18 + 9 * hid * c + c + 2 * c
    assert n_params(m) == expected


# ----------------------------------------------------------------------------------------------------------------------
# Reference comparisons
# ----------------------------------------------------------------------------------------------------------------------


def test_nam_channel_matches_authors_code_train_and_eval():
    torch.manual_seed(0)
    c = 24
    nam = randomise_(NAM(c), seed=1)
    with torch.no_grad():
        nam.bn.weight[::5] *= -1  # negative gammas: W_gamma must use |gamma|
    ref = Channel_Att(c)
    ref.bn2.load_state_dict(nam.bn.state_dict())

    # train mode: batch statistics, running stats updated identically, same gradients
    nam.train(), ref.train()
    for step in range(3):
        x = (torch.randn(3, c, 9, 7) * 2 + 0.5).requires_grad_()
        x2 = x.detach().clone().requires_grad_()
        y, y_ref = nam(x), ref(x2)
        torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
        w = torch.randn_like(y)
        (y * w).sum().backward()
        (y_ref * w).sum().backward()
        torch.testing.assert_close(x.grad, x2.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(nam.bn.weight.grad, ref.bn2.weight.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(nam.bn.bias.grad, ref.bn2.bias.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(nam.bn.running_mean, ref.bn2.running_mean)
    torch.testing.assert_close(nam.bn.running_var, ref.bn2.running_var)

    # eval mode: running statistics
    nam.eval(), ref.eval()
    x = torch.randn(2, c, 6, 11) * 3
    with torch.no_grad():
        torch.testing.assert_close(nam(x), ref(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_nam_spatial_matches_formula(mode):
    torch.manual_seed(0)
    c = 16
    nam = randomise_(NAM(c, spatial=True), seed=2)
    with torch.no_grad():
        nam.spatial.weight[1::4] *= -1
    ref = Channel_Att(c)
    ref.bn2.load_state_dict(nam.bn.state_dict())
    getattr(nam, mode)(), getattr(ref, mode)()
    x = torch.randn(2, c, 10, 7) * 2
    with torch.no_grad():
        y = nam(x)
        y_ref = nam_spatial_reference(ref(x), nam.spatial.weight, nam.spatial.bias, eps=1e-5)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    # The spatial gate must actually do something: differs from the channel gate alone.
    assert (y - ref(x)).abs().max() > 1e-2


@pytest.mark.parametrize("lam", [1e-4, 0.1, 3.0])
def test_simam_matches_closed_form(lam):
    torch.manual_seed(0)
    m = SimAM(8, e_lambda=lam)
    for shape in [(2, 8, 12, 12), (1, 8, 5, 9), (2, 8, 1, 4)]:
        x = torch.randn(shape) * 2 + 1
        y = m(x)
        torch.testing.assert_close(y.double(), simam_reference(x, lam), rtol=1e-5, atol=1e-5)


def test_se_matches_matmul_reference():
    torch.manual_seed(0)
    for c, r in [(16, 4), (64, 16), (40, 2)]:
        se = randomise_(SE(c, reduction=r), seed=c)
        x = torch.randn(2, c, 7, 9)
        with torch.no_grad():
            torch.testing.assert_close(se(x).double(), se_reference(x, se), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_das_matches_torchvision_reference(mode):
    das = das_with_offsets(16, alpha=0.25, seed=3)
    ref = DASReference(das)
    getattr(das, mode)(), getattr(ref, mode)()
    torch.manual_seed(4)
    x = torch.randn(2, 16, 13, 10)
    with torch.no_grad():
        # The deformable sampling is really exercised: offsets are several pixels, fractional, and change the result.
        h = F.gelu(ref.inorm(ref.pw(ref.dw(x))))
        off = ref.offset(h)
        assert off.abs().mean() > 0.5
        assert (off - off.round()).abs().mean() > 0.1
        y_ref = ref(x)
        assert (y_ref - ref(x, zero_offsets=True)).abs().max() > 1e-2
        torch.testing.assert_close(das(x), y_ref, rtol=1e-5, atol=1e-5)


def test_das_default_init_is_regular_conv():
    """Zero-initialised offsets: the deformable conv is an ordinary conv (checked with F.conv2d)."""
    torch.manual_seed(0)
    das = DAS(16)
    x = torch.randn(2, 16, 9, 9)
    with torch.no_grad():
        h = F.gelu(F.instance_norm(das.pw(das.dw(x)), weight=das.norm.weight, bias=das.norm.bias, eps=das.norm.eps))
        g = F.conv2d(h, das.weight, das.bias, padding=1)
        g = F.layer_norm(g.permute(0, 2, 3, 1), (16,), das.ln.weight, das.ln.bias).permute(0, 3, 1, 2)
        torch.testing.assert_close(das(x), x * torch.sigmoid(g), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------------------------------------------
# float16
# ----------------------------------------------------------------------------------------------------------------------


def test_simam_fp16_large_map_stays_finite_and_matches_fp32():
    torch.manual_seed(0)
    x32 = (torch.randn(2, 8, 80, 80) * 100).half().float()  # same values in both precisions
    x16 = x32.half()
    # Guard: the naive fp16 computation really overflows on this input (otherwise the test proves nothing).
    d16 = (x16 - x16.mean(dim=(2, 3), keepdim=True)) ** 2
    assert not torch.isfinite(d16.sum(dim=(2, 3))).all()
    m = SimAM(8)
    y16, y32 = m(x16), m(x32)
    assert y16.dtype == torch.float16
    assert torch.isfinite(y16).all()
    torch.testing.assert_close(y16.float(), y32, rtol=2e-3, atol=1e-2)
    torch.testing.assert_close(y32.double(), simam_reference(x32, 1e-4), rtol=1e-5, atol=1e-4)


def _fp16_forward_or_skip(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    try:
        return m(x)
    except (RuntimeError, NotImplementedError) as e:  # e.g. "not implemented for 'Half'" on some CPU builds
        pytest.skip(f"{type(m).__name__} float16 op not supported on {x.device.type} in this torch build: {e}")


@pytest.mark.parametrize("name", ["NAM", "NAM-spatial", "SE"])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_nam_se_fp16_finite(name, mode):
    torch.manual_seed(0)
    m = randomise_(FACTORIES[name](64), seed=5)
    getattr(m, mode)()
    m16 = FACTORIES[name](64)
    m16.load_state_dict(m.state_dict())
    m16 = getattr(m16.half(), mode)()
    x = torch.randn(2, 64, 40, 40) * 20
    with torch.no_grad():
        y16 = _fp16_forward_or_skip(m16, x.half())
        y32 = m(x.half().float())
    assert y16.dtype == torch.float16
    assert torch.isfinite(y16).all()
    torch.testing.assert_close(y16.float(), y32, rtol=1e-2, atol=5e-2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="DAS float16 is a GPU (AMP) path; no CUDA device here")
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_das_fp16_cuda(mode):
    das = das_with_offsets(32, alpha=0.25, seed=6)
    getattr(das, mode)()
    das16 = DAS(32, alpha=0.25)
    das16.load_state_dict(das.state_dict())
    das, das16 = das.cuda(), getattr(das16.half().cuda(), mode)()
    x = torch.randn(2, 32, 40, 40, device="cuda") * 10
    with torch.no_grad():
        y16 = das16(x.half())
        y32 = das(x.half().float())
        with torch.autocast("cuda", dtype=torch.float16):
            ya = das(x)
    assert y16.dtype == torch.float16 and torch.isfinite(y16).all()
    assert torch.isfinite(ya).all()
    torch.testing.assert_close(y16.float(), y32, rtol=2e-2, atol=5e-2)
    torch.testing.assert_close(ya.float(), y32, rtol=2e-2, atol=5e-2)


# ----------------------------------------------------------------------------------------------------------------------
# 1x1 inputs
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FACTORIES))
def test_1x1_input_finite_in_eval(name):
    torch.manual_seed(0)
    m = randomise_(FACTORIES[name](16), seed=7).eval()
    for b in (1, 2):
        x = torch.randn(b, 16, 1, 1) * 3
        with torch.no_grad():
            y = m(x)
        assert y.shape == x.shape
        assert torch.isfinite(y).all()


def test_simam_1x1_is_x_times_sigmoid_half():
    x = torch.randn(3, 8, 1, 1) * 5
    for lam in (1e-4, 0.1):
        y = SimAM(8, e_lambda=lam)(x)
        torch.testing.assert_close(y, x * torch.sigmoid(torch.tensor(0.5)), rtol=1e-6, atol=1e-6)


def test_das_1x1_uses_instance_norm_shift():
    """On 1x1 maps the normalised value is 0, so the bottleneck is GELU(beta) (das.py docstring)."""
    das = das_with_offsets(16, alpha=0.25, seed=8).eval()
    ref = DASReference(das)
    x = torch.randn(2, 16, 1, 1)
    with torch.no_grad():
        h = F.gelu(das.norm.bias.view(1, -1, 1, 1).expand(2, -1, 1, 1).contiguous())
        torch.testing.assert_close(das(x), ref.tail(h, x), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------------------------------------------
# Gradients
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["NAM", "NAM-spatial", "SE", "SimAM", "DAS"])
def test_gradients_flow(name):
    """Finite, non-zero gradients reach the input and every parameter (DAS's zero-initialised offset conv gets its
    gradient only through the deformable kernel, so it is checked for finiteness only)."""
    torch.manual_seed(0)
    m = FACTORIES[name](16).train()
    x = torch.randn(2, 16, 9, 8, requires_grad=True)
    y = m(x)
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for pname, p in m.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        if not pname.startswith("offset."):
            assert p.grad.abs().sum() > 0, pname


# ----------------------------------------------------------------------------------------------------------------------
# Argument validation and defaults
# ----------------------------------------------------------------------------------------------------------------------

BAD_ARGS = [
    (lambda: SE(16, reduction=0), r"SE: argument 'reduction' must be a number > 0"),
    (lambda: SE(16, reduction=-2), r"SE: argument 'reduction' must be a number > 0"),
    (lambda: SE(16, divisor=0), r"SE: argument 'divisor' must be an integer >= 1"),
    (lambda: DAS(16, alpha=-1), r"DAS: argument 'alpha' must be a number > 0(\.0)? and <= 1"),
    (lambda: DAS(16, alpha=0), r"DAS: argument 'alpha' must be a number > 0(\.0)? and <= 1"),
    (lambda: DAS(16, alpha=1.5), r"DAS: argument 'alpha' must be a number > 0(\.0)? and <= 1"),
    (lambda: DAS(16, alpha=float("nan")), r"DAS: argument 'alpha' must be a number > 0(\.0)? and <= 1"),
    (lambda: DAS(16, k=2), r"DAS: argument 'k' must be an odd integer >= 1 and <= 15"),
    (lambda: DAS(16, k=0), r"DAS: argument 'k' must be an odd integer >= 1"),
    (lambda: NAM(16, spatial=3), r"NAM: argument 'spatial' must be true or false"),
    (lambda: SimAM(16, e_lambda=0), r"SimAM: argument 'e_lambda' must be a number > 0"),
    (lambda: NAM(0), r"NAM: argument 'c1' \(input channels\) must be an integer >= 1"),
    (lambda: SE(16.5), r"SE: argument 'c1' \(input channels\) must be an integer >= 1"),
    (lambda: DAS(True), r"DAS: argument 'c1' \(input channels\) must be an integer >= 1"),
]


@pytest.mark.parametrize("make,pattern", BAD_ARGS, ids=[p.split(":")[0] + "-" + p.split("'")[1] for _, p in BAD_ARGS])
def test_invalid_arguments_raise_value_error(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def test_defaults_with_only_c1():
    assert NAM(32).spatial is None
    assert SimAM(32).e_lambda == pytest.approx(1e-4)
    se = SE(64)
    assert se.fc1.out_channels == 8  # 64 / 16 = 4 -> floored at 8
    das = DAS(32)
    assert das.alpha == pytest.approx(0.2) and das.k == 3 and das.hidden == 6
    x = torch.randn(1, 32, 6, 6)
    for m in (NAM(32), SimAM(32), SE(32), DAS(32)):
        assert m(x).shape == x.shape


# ----------------------------------------------------------------------------------------------------------------------
# state_dict round trip
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FACTORIES))
def test_state_dict_round_trip(name):
    torch.manual_seed(0)
    m = randomise_(FACTORIES[name](16), seed=9)
    if name == "DAS":
        with torch.no_grad():
            m.offset.weight.normal_(0, 0.2)
    m.eval()
    fresh = FACTORIES[name](16)
    fresh.load_state_dict(m.state_dict())
    fresh.eval()
    x = torch.randn(2, 16, 7, 9)
    with torch.no_grad():
        assert torch.equal(m(x), fresh(x))


@pytest.mark.parametrize("name", list(FACTORIES))
def test_whole_module_pickle_round_trip(name):
    """Ultralytics checkpoints pickle the whole model, not just the state_dict."""
    torch.manual_seed(0)
    m = randomise_(FACTORIES[name](16), seed=10).eval()
    clone = pickle.loads(pickle.dumps(m))
    x = torch.randn(2, 16, 7, 9)
    with torch.no_grad():
        assert torch.equal(m(x), clone(x))
    assert repr(clone) == repr(m)


# ----------------------------------------------------------------------------------------------------------------------
# Non-finite and uninitialised input to DAS (in a subprocess: a segfault must fail the test, not kill pytest)
# ----------------------------------------------------------------------------------------------------------------------


NONFINITE_SRC = """
    import math, torch
    from yolo_attn.modules import DAS
    torch.manual_seed(0)
    plain = DAS(16)                      # default: zero-initialised offset conv
    deform = DAS(16)
    with torch.no_grad():
        deform.offset.weight.normal_(0, 0.2)   # non-zero offsets
    for m in (plain, deform):
        for mode in ("train", "eval"):
            getattr(m, mode)()
            for bad in (math.nan, math.inf, -math.inf):
                x = torch.randn(2, 16, 12, 12)
                x[0, 3, 5, 7] = bad
                with torch.no_grad():
                    y = m(x)
                assert y.shape == x.shape
                assert not torch.isfinite(y[0]).all(), (mode, bad)
                assert torch.isfinite(y[1]).all(), (mode, bad)   # the other sample is unaffected
            x = torch.full((1, 16, 5, 5), math.nan)
            assert torch.isnan(m(x)).all()
        x = torch.randn(2, 16, 12, 12)
        x[0, 3, 5, 7] = math.nan
        x.requires_grad_(True)
        m.train()(x).sum().backward()            # a training step on a bad batch must not crash either
    print("OK")
"""

EMPTY_SRC = """
    import torch
    from yolo_attn.modules import DAS
    torch.manual_seed(0)
    m = DAS(16)
    with torch.no_grad():
        m.offset.weight.normal_(0, 0.2)
    for mode in ("train", "eval"):
        getattr(m, mode)()
        for trial in range(2):
            probes = [
                torch.empty(1, 16, 32, 32),  # Ultralytics' get_flops feeds torch.empty
                torch.randint(-2**31, 2**31 - 1, (1, 16, 32, 32), dtype=torch.int32).view(torch.float32),  # any bits
            ]
            for x in probes:
                with torch.no_grad():
                    y = m(x)
                assert y.shape == x.shape
    print("OK")
"""


PROBES = {"nonfinite": NONFINITE_SRC, "empty": EMPTY_SRC}
PROBE_TESTS = {
    "test_das_nonfinite_input_gives_nonfinite_output_without_crash": "nonfinite",
    "test_das_uninitialised_input_like_flops_probe": "empty",
}


@pytest.fixture(scope="module", autouse=True)
def das_probes(request, tmp_path_factory):
    """Start the crash-prone DAS probes in child processes when this module's first test starts.

    Each child pays several seconds of torch imports, so they run in the background at low priority while the other
    tests run; their tests come last in the file. Only the probes whose tests are selected are started; output goes
    to files (no pipe can fill up), and unfinished children are killed at teardown.
    """
    selected = sorted({PROBE_TESTS[i.name] for i in request.session.items if i.name in PROBE_TESTS})
    env = dict(os.environ, OMP_NUM_THREADS="1", YOLO_ATTN_AUTOREGISTER="0")  # the blocks only, no parser hooks
    logs = tmp_path_factory.mktemp("das-probes")
    procs = {}
    for name in selected:
        out, err = open(logs / f"{name}.out", "w+"), open(logs / f"{name}.err", "w+")
        proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(PROBES[name])],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=err,
            text=True,
            preexec_fn=(lambda: os.nice(10)) if hasattr(os, "nice") else None,  # background: yield CPU to the tests
        )
        procs[name] = (proc, out, err)
    yield procs
    for proc, out, err in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        out.close()
        err.close()


def _check_probe(procs, name):
    proc, out, err = procs[name]
    try:
        rc = proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    out.seek(0)
    err.seek(0)
    stdout, stderr = out.read(), err.read()
    assert rc == 0, f"child process rc={rc} (negative: killed by signal, -11 = segfault)\nstdout:\n{stdout}\nstderr:\n{stderr[-3000:]}"
    assert "OK" in stdout


def test_das_nonfinite_input_gives_nonfinite_output_without_crash(das_probes):
    _check_probe(das_probes, "nonfinite")


def test_das_uninitialised_input_like_flops_probe(das_probes):
    _check_probe(das_probes, "empty")
