"""DAS: Deformable Attention to capture Salient information.

Paper: "DAS: A Deformable Attention to Capture Salient Information in CNNs", Salajegheh et al., 2023
(arXiv 2311.12091). No official code was published; this follows the paper's description step by step:

    h = GELU(InstanceNorm(PW(DW(x))))         # depthwise-separable bottleneck, C -> hidden = round(alpha * C)
    o = OffsetConv3x3(h)                      # 2 * 3 * 3 sampling offsets per position (zero-initialised)
    g = sigmoid(LayerNorm_C(DeformConv3x3(h, o)))   # deformable conv back to C, LayerNorm over channels
    y = x * g

alpha is the one hyper-parameter: the paper's ablation finds alpha >= 0.1 good and trades accuracy for FLOPs above
that; the default 0.2 sits in the flat part of that curve. ``hidden = max(1, round(alpha * C))``.

Parameters added: 9C (depthwise) + C*hidden (pointwise) + 2*hidden (InstanceNorm affine)
+ 18*9*hidden + 18 (offset conv) + 9*hidden*C + C (deformable conv) + 2C (LayerNorm).
Shape contract: (B, C, H, W) -> (B, C, H, W).

Robustness: torchvision's CPU ``deform_conv2d`` indexes memory with the sampling positions and crashes the process
on NaN offsets (Ultralytics' FLOPs probe feeds uninitialised memory). NaN offsets are replaced by 0, so NaN/inf
input gives NaN/inf output instead of a segfault; finite offsets are untouched. InstanceNorm needs more than one
spatial element (a PyTorch rule, even in eval mode); on 1x1 maps the normalised value is exactly 0, so the
bottleneck output there is the InstanceNorm shift beta, computed directly.

Speed: on the CPU the deformable convolution is computed as bilinear sampling of ``h`` at the k*k shifted positions
of every pixel (one ``grid_sample`` call, in float64) followed by a 1x1 convolution with the same weights: the same
formula as torchvision's kernel (zero outside the map, corners outside count as zero), 2-3x faster forward and
5-7x faster forward+backward than torchvision's CPU kernel at YOLOv8n's feature-map sizes, and closer to the exact
result (sampling coordinates in float64; torchvision's float32 kernel is off by ~1e-5 on 160x160 maps). On other
devices, and while tracing or exporting (the ONNX ``DeformConv`` node), torchvision's ``deform_conv2d`` is used.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import BLOCKS
from .base import Arg, AttentionGate, slice_conv2d, slice_norm, slice_param

__all__ = ["DAS", "deform_conv2d_sampled"]


def deform_conv2d_sampled(
    h: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """Deformable convolution (stride 1, "same" padding, one offset group, no mask) as sampling plus a 1x1 conv.

    Output pixel (y, x), kernel point (i, j) samples ``h`` bilinearly at ``(y + i - k//2 + dy, x + j - k//2 + dx)``
    with (dy, dx) the offset pair of that point (torchvision's layout: pairs per kernel point, row-major), zero
    outside the map; the k*k samples of each channel are then weighted and summed by ``weight`` as in torchvision's
    ``deform_conv2d``. The sampling runs in float64: normalised grid coordinates in float32 would move the sampling
    points by up to ~1e-5 px on 160-px maps.

    Args:
        h (torch.Tensor): Input of shape (B, Ch, H, W).
        offset (torch.Tensor): Offsets of shape (B, 2 * k * k, H, W), finite.
        weight (torch.Tensor): Weight of shape (C, Ch, k, k), k odd.
        bias (torch.Tensor): Bias of shape (C,).

    Returns:
        (torch.Tensor): Output of shape (B, C, H, W), dtype of ``h``.
    """
    b, ch, hh, ww = h.shape
    k = weight.shape[-1]
    kk, f64 = k * k, torch.float64
    r = torch.arange(k, dtype=f64, device=h.device) - k // 2
    off = offset.to(f64).view(b, kk, 2, hh, ww)
    # grid_sample with align_corners=False reads coordinate g as pixel ((g + 1) * size - 1) / 2: invert that map
    ys = torch.arange(hh, dtype=f64, device=h.device).view(1, 1, hh, 1) + r.repeat_interleave(k).view(1, kk, 1, 1)
    xs = torch.arange(ww, dtype=f64, device=h.device).view(1, 1, 1, ww) + r.repeat(k).view(1, kk, 1, 1)
    gy = (off[:, :, 0] + ys).mul_(2 / hh).add_(1 / hh - 1)
    gx = (off[:, :, 1] + xs).mul_(2 / ww).add_(1 / ww - 1)
    grid = torch.stack((gx, gy), -1).view(b, kk * hh, ww, 2)  # the kk points stacked along H: one call
    cols = F.grid_sample(h.to(f64), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    cols = cols.to(h.dtype).view(b, ch * kk, hh, ww)  # (B, Ch, kk*H, W) is already (B, Ch*kk, H, W) in memory
    return F.conv2d(cols, weight.reshape(weight.shape[0], ch * kk, 1, 1), bias)


def _exporting() -> bool:
    """Whether a tracer or exporter records the graph (it must see torchvision's op, mapped to ONNX DeformConv)."""
    return torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export()


@BLOCKS.register
class DAS(AttentionGate):
    """Deformable attention gate: depthwise-separable bottleneck, deformable conv, channel LayerNorm, sigmoid.

    Attributes:
        dw (nn.Conv2d): Depthwise 3x3 convolution.
        pw (nn.Conv2d): Pointwise convolution C -> hidden.
        norm (nn.InstanceNorm2d): Instance normalisation of the bottleneck.
        act (nn.GELU): Non-linearity.
        offset (nn.Conv2d): Predicts the 2*k*k sampling offsets.
        weight (nn.Parameter): Deformable convolution weight, (C, hidden, k, k).
        bias (nn.Parameter): Deformable convolution bias, (C,).
        ln (nn.LayerNorm): LayerNorm over the channels at each position.
    """

    rank = 40
    args = (
        Arg("alpha", 0.2, low=0.0, high=1.0, low_open=True, doc="bottleneck ratio: hidden width round(alpha * C)"),
        Arg("k", 3, kind="int", low=1, high=15, odd=True, doc="deformable kernel size"),
    )
    aliases = ("DASAttention",)
    paper = "Salajegheh et al. 2023, [arXiv 2311.12091](https://arxiv.org/abs/2311.12091)"
    formula = "y = x * sigmoid(LN_C(DeformConv(GELU(IN(PW(DW(x)))))))"
    params = "9C + C*h + 2h + 162h + 18 + 9hC + C + 2C, h = round(alpha*C)"
    config_args = (0.2,)
    export_opset = 19  # ONNX DeformConv
    fresh_gate = True
    prune_exact = False  # the gate's LayerNorm normalises over all channels

    def __init__(self, c1: int, alpha: float = 0.2, k: int = 3):
        """Initialise DAS.

        Args:
            c1 (int): Input channels.
            alpha (float): Bottleneck ratio, in (0, 1]; hidden width is ``max(1, round(alpha * c1))``.
            k (int): Kernel size of the deformable convolution (odd, >= 1); the paper uses 3.
        """
        super().__init__(c1)
        self.alpha, k = self.checked(alpha=alpha, k=k)
        c1 = self.c1
        self.k, self.hidden = k, max(1, round(self.alpha * c1))
        self.dw = nn.Conv2d(c1, c1, 3, padding=1, groups=c1, bias=False)
        self.pw = nn.Conv2d(c1, self.hidden, 1, bias=False)
        self.norm = nn.InstanceNorm2d(self.hidden, affine=True)
        self.act = nn.GELU()
        self.offset = nn.Conv2d(self.hidden, 2 * k * k, 3, padding=1)
        nn.init.zeros_(self.offset.weight)  # start as a regular convolution (DCN convention)
        nn.init.zeros_(self.offset.bias)
        self.weight = nn.Parameter(torch.empty(c1, self.hidden, k, k))
        self.bias = nn.Parameter(torch.zeros(c1))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)  # as torchvision.ops.DeformConv2d
        self.ln = nn.LayerNorm(c1)

    def _instance_norm(self, h: torch.Tensor) -> torch.Tensor:
        """InstanceNorm that also accepts 1x1 maps, where ``(h - mean) = 0`` leaves the shift beta."""
        if h.shape[2] * h.shape[3] > 1:
            return self.norm(h)
        return (h - h) * self.norm.weight[:, None, None] + self.norm.bias[:, None, None]  # h - h keeps NaN/inf

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """Compute the attention gate in (0, 1).

        Args:
            x (torch.Tensor): Input of shape (B, C, H, W).

        Returns:
            (torch.Tensor): Gate of shape (B, C, H, W).
        """
        h = self.act(self._instance_norm(self.pw(self.dw(x))))
        off = torch.nan_to_num(self.offset(h), nan=0.0)  # NaN offsets crash torchvision's CPU kernel
        if h.device.type == "cpu" and not _exporting():
            # beyond the map plus the kernel reach every sample is 0: clamping there keeps the result, and keeps
            # grid coordinates from nan_to_num's +-3.4e38 finite after normalisation
            reach = max(h.shape[2], h.shape[3]) + self.k
            g = deform_conv2d_sampled(h, off.clamp(-reach, reach), self.weight, self.bias)
        else:
            from torchvision.ops import deform_conv2d  # lazy: torchvision's import costs seconds at start-up

            g = deform_conv2d(h, off, self.weight, self.bias, padding=self.k // 2)
        return self._channel_layer_norm(g).sigmoid_()

    def _channel_layer_norm(self, g: torch.Tensor) -> torch.Tensor:
        """LayerNorm over dim 1 of (B, C, H, W), computed in place (no permute round trip through channels-last).

        Equal to ``LayerNorm(C)`` on ``g.permute(0, 2, 3, 1)``, permuted back: biased variance, ``eps`` inside the
        square root. Returns a new tensor that callers may modify in place; ``g`` is overwritten without autograd.
        """
        w, b = self.ln.weight[:, None, None], self.ln.bias[:, None, None]
        mean = g.mean(1, keepdim=True)
        if torch.is_grad_enabled():  # autograd: out of place
            d = g - mean
            return d * torch.rsqrt(d.square().mean(1, keepdim=True) + self.ln.eps) * w + b
        d = g.sub_(mean)
        var = torch.linalg.vector_norm(d, dim=1, keepdim=True).square_().div_(d.shape[1])  # no d^2 temporary
        return torch.addcmul(b, d.mul_(var.add_(self.ln.eps).rsqrt_()), w, out=d)

    @torch.no_grad()
    def prune_channels(self, keep: torch.Tensor) -> None:
        """Keep channels ``keep``: depthwise conv, pointwise input, deformable output and bias, LayerNorm.

        The hidden width stays. Not exact: the LayerNorm of the gate normalises over all channels.

        Args:
            keep (torch.Tensor): Channels to keep.
        """
        slice_conv2d(self.dw, out_keep=keep)
        slice_conv2d(self.pw, in_keep=keep)
        slice_param(self, "weight", keep, 0)
        slice_param(self, "bias", keep, 0)
        slice_norm(self.ln, keep)
        self.c1 = len(keep)

    def extra_repr(self) -> str:
        """Return the bottleneck settings for ``print(model)``."""
        return f"alpha={self.alpha:g}, hidden={self.hidden}, k={self.k}"
