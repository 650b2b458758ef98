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
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.ops import deform_conv2d

from ._checks import check_channels, check_number

__all__ = ["DAS"]


class DAS(nn.Module):
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

    def __init__(self, c1: int, alpha: float = 0.2, k: int = 3):
        """Initialise DAS.

        Args:
            c1 (int): Input channels.
            alpha (float): Bottleneck ratio, in (0, 1]; hidden width is ``max(1, round(alpha * c1))``.
            k (int): Kernel size of the deformable convolution (odd, >= 1); the paper uses 3.
        """
        super().__init__()
        c1 = check_channels("DAS", c1)
        self.alpha = check_number("DAS", "alpha", alpha, 0.0, 1.0, low_open=True)
        k = check_number("DAS", "k", k, 1, 15, integer=True)
        if k % 2 == 0:
            raise ValueError(f"DAS: argument 'k' must be an odd integer in [1, 15], got {k}")
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
        g = deform_conv2d(h, off, self.weight, self.bias, padding=self.k // 2)
        g = F.layer_norm(g.permute(0, 2, 3, 1), self.ln.normalized_shape, self.ln.weight, self.ln.bias, self.ln.eps)
        return g.permute(0, 3, 1, 2).sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the DAS gate.

        Args:
            x (torch.Tensor): Input of shape (B, C, H, W).

        Returns:
            (torch.Tensor): ``x * gate``, same shape.
        """
        return x * self.gate(x)

    def extra_repr(self) -> str:
        """Return the bottleneck settings for ``print(model)``."""
        return f"alpha={self.alpha:g}, hidden={self.hidden}, k={self.k}"
