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

Speed: on the CPU the deformable convolution is a bilinear gather plus one matrix product. Each sampling position is
split into an integer corner (``floor`` of the offset plus the pixel and kernel-point coordinates) and the offset's
fractional part, both exact in float32, so the samples sit exactly where torchvision's float64 kernel puts them
(normalised ``grid_sample`` coordinates in float32 would move them by ~1e-5 px on 160-px maps); one ``embedding_bag``
call sums the four weighted corners of every (pixel, kernel point) from a zero-padded channels-last table of the
bottleneck, and one batched matrix product applies the kernel weights to the k*k samples. That product uses the
weights minus their mean over output channels, so its output is already centred for the channel LayerNorm, which then
needs one reduction and three in-place passes on the NCHW result. InstanceNorm works on contiguous (channel, H*W)
rows. Same formula as torchvision's kernel (zero outside the map, corners outside count as zero), within 1e-5 of it
in float64. With autograd (training) the samples come from one float64 ``grid_sample`` call instead, whose backward
is faster than the gather's. On other devices, and while tracing or exporting (the ONNX ``DeformConv`` node), torchvision's
``deform_conv2d`` is used.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import BLOCKS
from .base import Arg, AttentionGate, slice_conv2d, slice_norm, slice_param

__all__ = ["DAS", "deform_conv2d_nhwc", "deform_conv2d_sampled", "deform_gather"]


_PAD = 2  # zero border of the gather table: corners clamped into it read zeros


@lru_cache(maxsize=16)  # a model's few map sizes; 1.8 MB each at 160x160, k=3
def _grid(hh: int, ww: int, k: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Return the (H, W, k*k, 2) table coordinates (y, x) of every pixel's regular kernel points, padding included."""
    with torch.inference_mode(False):  # a normal tensor, usable whatever the caller's grad mode
        r = torch.arange(k, device=device) - k // 2 + _PAD
        gy = (torch.arange(hh, device=device).view(hh, 1, 1) + r.repeat_interleave(k)).expand(hh, ww, k * k)
        gx = (torch.arange(ww, device=device).view(1, ww, 1) + r.repeat(k)).expand(hh, ww, k * k)
        return torch.stack((gy, gx), -1).to(dtype)


def _bilinear_taps(offset: torch.Tensor, hh: int, ww: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Table rows and weights of the four bilinear corners of every (batch, pixel, kernel point) sample.

    The corner ``floor(offset) + regular position`` is an integer and the weights come from
    ``offset - floor(offset)``, both exact in floating point (no large coordinate is ever rounded). Corners are
    clamped into the table's zero border, so samples that fall outside the map read zeros.

    Args:
        offset (torch.Tensor): Offsets (dy, dx) of shape (B, H, W, k*k, 2), finite, contiguous.
        hh (int): Map height.
        ww (int): Map width.
        k (int): Kernel size.

    Returns:
        (tuple[torch.Tensor, torch.Tensor]): Row indices into the (B * (H+4) * (W+4), C) table and their weights,
            each of shape (B * H * W * k*k, 4), corners in the order (y0, x0), (y0, x0+1), (y0+1, x0), (y0+1, x0+1).
    """
    b = offset.shape[0]
    wp, rows = ww + 2 * _PAD, (hh + 2 * _PAD) * (ww + 2 * _PAD)
    # float32 holds every integer below 2^24 exactly: beyond that (maps over ~4000 px) the row index needs float64
    pdt = offset.dtype if rows < 2**24 else torch.float64
    fl = torch.floor(offset.detach())
    frac = offset - fl  # exact; the gradient reaches the offsets through the weights
    base = fl.to(pdt).add_(_grid(hh, ww, k, pdt, offset.device))  # fl is not needed any more
    if hh == ww:  # both corners stay inside the padded table
        base.clamp_(0, hh + 2 * _PAD - 2)
    else:
        base[..., 0].clamp_(0, hh + 2 * _PAD - 2)
        base[..., 1].clamp_(0, ww + 2 * _PAD - 2)
    row = torch.add(base[..., 1], base[..., 0], alpha=wp).to(torch.int32 if b * rows < 2**31 else torch.int64)
    if b > 1:
        row += torch.arange(b, device=row.device, dtype=row.dtype).view(b, 1, 1, 1) * rows
    idx = torch.stack((row, row + 1, row + wp, row + (wp + 1)), -1).view(-1, 4)
    ly, lx = frac[..., 0], frac[..., 1]
    if torch.is_grad_enabled() and offset.requires_grad:
        w11 = ly * lx
        w01, w10 = lx - w11, ly - w11
        return idx, torch.stack(((1 - ly) - w01, w01, w10, w11), -1).view(-1, 4)
    w = torch.empty(idx.shape, dtype=offset.dtype, device=offset.device)  # written column by column: no stack copy
    w11, w01, w10 = w[:, 3].view_as(ly), w[:, 1].view_as(ly), w[:, 2].view_as(ly)
    torch.mul(ly, lx, out=w11)
    torch.sub(lx, w11, out=w01)
    torch.sub(ly, w11, out=w10)
    torch.sub(1 - ly, w01, out=w[:, 0].view_as(ly))
    return idx, w


def deform_gather(h: torch.Tensor, offset: torch.Tensor, k: int) -> torch.Tensor:
    """The k*k bilinear samples of every pixel that a deformable convolution weighs, channels-last.

    Output pixel (y, x), kernel point (i, j) samples ``h`` bilinearly at ``(y + i - k//2 + dy, x + j - k//2 + dx)``
    with (dy, dx) the offset pair of that point (torchvision's layout: pairs per kernel point, row-major), zero
    outside the map, as torchvision's ``deform_conv2d``. One ``embedding_bag`` call sums the four weighted corners.

    Args:
        h (torch.Tensor): Input of shape (B, H, W, Ch), float32 or float64, contiguous.
        offset (torch.Tensor): Offsets of shape (B, H, W, k*k, 2), finite, dtype of ``h``.
        k (int): Kernel size (odd).

    Returns:
        (torch.Tensor): Samples of shape (B * H * W * k*k, Ch), rows in (B, H, W, kernel point) order.
    """
    b, hh, ww, ch = h.shape
    table = F.pad(h, (0, 0, _PAD, _PAD, _PAD, _PAD))  # (B, H+4, W+4, Ch)
    idx, w = _bilinear_taps(offset.contiguous(), hh, ww, k)
    return F.embedding_bag(idx, table.view(-1, ch), per_sample_weights=w, mode="sum")


def deform_conv2d_nhwc(
    h: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """Deformable convolution (stride 1, "same" padding, one offset group, no mask) on channels-last tensors.

    The samples of :func:`deform_gather`, weighted and summed by ``weight`` in one ``addmm``.

    Args:
        h (torch.Tensor): Input of shape (B, H, W, Ch), float32 or float64, contiguous.
        offset (torch.Tensor): Offsets of shape (B, H, W, k*k, 2), finite, dtype of ``h``.
        weight (torch.Tensor): Weight of shape (C, Ch, k, k), k odd.
        bias (torch.Tensor): Bias of shape (C,).

    Returns:
        (torch.Tensor): Output of shape (B * H * W, C), rows in (B, H, W) order, contiguous.
    """
    b, hh, ww, ch = h.shape
    c, k = weight.shape[0], weight.shape[-1]
    cols = deform_gather(h, offset, k)
    wmat = weight.permute(0, 2, 3, 1).reshape(c, k * k * ch)  # columns in (kernel point, channel) order, as cols
    return torch.addmm(bias, cols.view(b * hh * ww, k * k * ch), wmat.t())


def deform_conv2d_sampled(
    h: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """Deformable convolution on (B, C, H, W) tensors, computed by :func:`deform_conv2d_nhwc`.

    Args:
        h (torch.Tensor): Input of shape (B, Ch, H, W).
        offset (torch.Tensor): Offsets of shape (B, 2 * k * k, H, W), finite (torchvision's layout).
        weight (torch.Tensor): Weight of shape (C, Ch, k, k), k odd.
        bias (torch.Tensor): Bias of shape (C,).

    Returns:
        (torch.Tensor): Output of shape (B, C, H, W) (channels-last in memory), dtype of ``h``.
    """
    b, ch, hh, ww = h.shape
    kk = weight.shape[-1] ** 2
    dt = torch.promote_types(h.dtype, torch.float32)
    hc = h.permute(0, 2, 3, 1).to(dt).contiguous()
    off = offset.permute(0, 2, 3, 1).to(dt).reshape(b, hh, ww, kk, 2)
    out = deform_conv2d_nhwc(hc, off, weight.to(dt), bias.to(dt))
    return out.view(b, hh, ww, -1).permute(0, 3, 1, 2).to(h.dtype)


def _grid_sample_cols(h: torch.Tensor, offset: torch.Tensor, k: int) -> torch.Tensor:
    """The k*k bilinear samples as :func:`deform_gather`, by one float64 ``grid_sample`` call (used with autograd).

    ``grid_sample``'s backward is several times faster than ``embedding_bag``'s on large maps, so training keeps it;
    float64 keeps the normalised coordinates exact enough (float32 would move the points by ~1e-5 px on 160-px maps).

    Args:
        h (torch.Tensor): Input of shape (B, Ch, H, W), any memory layout.
        offset (torch.Tensor): Offsets of shape (B, 2 * k * k, H, W), finite, within the map plus the kernel reach.
        k (int): Kernel size (odd).

    Returns:
        (torch.Tensor): Samples of shape (B, Ch * k*k, H * W), channel-major, dtype of ``h``.
    """
    b, ch, hh, ww = h.shape
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
    return cols.to(h.dtype).view(b, ch * kk, hh * ww)  # (B, Ch, kk*H, W) is (B, Ch*kk, H*W) in memory


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
    notes = (
        'hidden width `max(1, round(alpha * C))`; the deformable offsets start at zero (a plain convolution at '
        "first). NaN offsets are replaced by 0 before torchvision's kernel, which otherwise crashes the process "
        "on them (Ultralytics' FLOPs probe feeds uninitialised memory): NaN input gives NaN output, never a "
        'segfault.'
    )
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
            (torch.Tensor): Gate of shape (B, C, H, W), dtype of ``x``.
        """
        if x.device.type != "cpu" or _exporting():
            return self._gate_torchvision(x)
        b, c, hh, ww = x.shape
        hid, kk, grad = self.hidden, self.k * self.k, torch.is_grad_enabled()
        dt = torch.promote_types(x.dtype, torch.float32)  # float16/bfloat16 -> float32; float64 stays
        # bottleneck: InstanceNorm (biased variance over H*W per sample and channel) on contiguous rows; on 1x1 maps
        # p - mean is exactly 0 (NaN/inf stay), which leaves the shift beta
        p = self.pw(self.dw(x)).to(dt).flatten(2)  # (B, hidden, H*W); module calls keep users' forward hooks working
        d = p - p.mean(-1, keepdim=True)
        var = torch.linalg.vector_norm(d, dim=-1, keepdim=True).square() / (hh * ww)  # (B, hidden, 1): tiny
        scale = torch.rsqrt(var + self.norm.eps) * self.norm.weight.to(dt)[:, None]
        h = self.act(torch.addcmul(self.norm.bias.to(dt)[:, None], d, scale))
        h = h.mT.contiguous().view(b, hh, ww, hid)  # channels-last: rows of the gather table, offset conv input
        o, hc = self.offset, h.permute(0, 3, 1, 2)  # channels-last input: channels-last output, (B, H, W, 2*k*k)
        off = o(hc) if o.weight.dtype == dt else F.conv2d(hc, o.weight.to(dt), o.bias.to(dt), padding=o.padding)
        off = off.permute(0, 2, 3, 1).reshape(b, hh, ww, kk, 2)
        # NaN offsets would give NaN corners; inf ones become huge finite ones, clamped to the zero border
        off = torch.nan_to_num(off, nan=0.0) if grad else torch.nan_to_num_(off, nan=0.0)
        if grad:  # samples (B, hidden*kk, H*W), channel-major; beyond the map plus the kernel reach all read 0
            reach = max(hh, ww) + self.k
            off = off.clamp(-reach, reach).permute(0, 3, 4, 1, 2).reshape(b, 2 * kk, hh, ww)
            cols, wmat = _grid_sample_cols(h.permute(0, 3, 1, 2), off, self.k), self.weight.to(dt).view(c, -1)
        else:  # samples (B, H*W, kk*hidden), point-major
            cols = deform_gather(h, off, self.k).view(b, hh * ww, kk * hid).mT
            wmat = self.weight.to(dt).permute(0, 2, 3, 1).reshape(c, kk * hid)
        # the deformable conv's weights, with the channel mean taken out: its output is then already centred for the
        # LayerNorm over channels, which needs one reduction (the variance) instead of a round trip to channels-last
        bias = self.bias.to(dt)
        g = torch.baddbmm((bias - bias.mean()).view(1, c, 1), (wmat - wmat.mean(0)).expand(b, -1, -1), cols)
        rs = torch.rsqrt((g * g).sum(1, keepdim=True).div_(c).add_(self.ln.eps))  # (B, 1, H*W)
        w, beta = self.ln.weight.to(dt)[:, None], self.ln.bias.to(dt)[:, None]
        g = g * rs * w + beta if grad else g.mul_(rs).mul_(w).add_(beta)
        return g.sigmoid_().view(b, c, hh, ww).to(x.dtype)

    def _gate_torchvision(self, x: torch.Tensor) -> torch.Tensor:
        """The gate with torchvision's ``deform_conv2d`` (other devices, tracing and export), in NCHW."""
        from torchvision.ops import deform_conv2d  # lazy: torchvision's import costs seconds at start-up

        h = self.act(self._instance_norm(self.pw(self.dw(x))))
        off = torch.nan_to_num(self.offset(h), nan=0.0)  # NaN offsets crash torchvision's CPU kernel
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
