"""CoordAtt: Coordinate Attention.

Paper: "Coordinate Attention for Efficient Mobile Network Design", Hou et al., CVPR 2021 (arXiv 2103.02907).
Authors' code: https://github.com/Andrew-Qibin/CoordAttention (``coordatt.py``).

Channel attention factorised into two 1-D encodings that keep the position along the other axis:

    z_h = mean_W(x)  (B, C, H, 1),   z_w = mean_H(x)  (B, C, W, 1)     # pool along W and along H
    f = h_swish(BN(conv1x1([z_h; z_w])))             # concatenated along the spatial axis, C -> mip, with bias
    f_h, f_w = split(f, [H, W])
    a_h = sigmoid(conv_h(f_h))  (B, C, H, 1),   a_w = sigmoid(conv_w(f_w^T))  (B, C, 1, W)   # mip -> C, with bias
    y = x * a_h * a_w                                 # the gate a_h * a_w is separable in h and w

``mip = max(8, C // reduction)``, reduction = 32, as the authors' code; h_swish(v) = v * relu6(v + 3) / 6.

Parameters added: ``3*C*mip + 3*mip + 2*C`` (conv1 ``C*mip + mip``, BN ``2*mip``, conv_h and conv_w
``mip*C + C`` each).
Shape contract: (B, C, H, W) -> (B, C, H, W).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..registry import BLOCKS
from .base import Arg, AttentionGate, slice_conv2d

__all__ = ["CoordAtt"]


@BLOCKS.register
class CoordAtt(AttentionGate):
    """Coordinate attention: direction-aware pooling, a shared 1x1 bottleneck, one gate per row and per column.

    Attributes:
        mip (int): Bottleneck width ``max(8, C // reduction)``.
        conv1 (nn.Conv2d): Shared 1x1 convolution C -> mip (with bias).
        bn1 (nn.BatchNorm2d): BatchNorm of the bottleneck.
        act (nn.Hardswish): h-swish.
        conv_h (nn.Conv2d): 1x1 convolution mip -> C for the row gate.
        conv_w (nn.Conv2d): 1x1 convolution mip -> C for the column gate.
    """

    rank = 70
    args = (Arg("reduction", 32, low=0.0, high="c1", low_open=True, doc="bottleneck width max(8, C // reduction)"),)
    aliases = ("CoordAttention",)
    paper = "Hou et al., CVPR 2021, [arXiv 2103.02907](https://arxiv.org/abs/2103.02907)"
    notes = (
        "is the authors' module (`mip = max(8, C // 32)`, BN, h-swish); its submodule names match theirs, so "
        'their state dicts load.'
    )
    formula = "y = x * sigmoid(conv_h(f_h)) * sigmoid(conv_w(f_w)), [f_h; f_w] = hswish(BN(conv([pool_W x; pool_H x])))"
    params = "3*C*mip + 3*mip + 2*C, mip = max(8, C // r)"
    config_args = ()  # [] in generated configs: a leading 32 reads as a channel count on 32-channel rows
    fresh_gate = True

    def __init__(self, c1: int, reduction: float = 32):
        """Initialise CoordAtt.

        Args:
            c1 (int): Input channels.
            reduction (float): Bottleneck reduction r (> 0): ``mip = max(8, C // r)``; the paper uses 32.
        """
        super().__init__(c1)
        (self.reduction,) = self.checked(reduction=reduction)
        self.mip = max(8, int(self.c1 // self.reduction))
        self.conv1 = nn.Conv2d(self.c1, self.mip, 1)
        self.bn1 = nn.BatchNorm2d(self.mip)
        self.act = nn.Hardswish()
        self.conv_h = nn.Conv2d(self.mip, self.c1, 1)
        self.conv_w = nn.Conv2d(self.mip, self.c1, 1)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """Compute ``a_h * a_w``, so that ``forward(x) == x * a_h * a_w``.

        Args:
            x (torch.Tensor): Input of shape (B, C, H, W).

        Returns:
            (torch.Tensor): Gate in (0, 1) of shape (B, C, H, W); a new tensor.
        """
        h, w = x.shape[2:]
        z = torch.cat((x.mean(3, keepdim=True), x.mean(2, keepdim=True).transpose(2, 3)), 2)  # (B, C, H + W, 1)
        f_h, f_w = self.act(self.bn1(self.conv1(z))).split((h, w), 2)
        return self.conv_h(f_h).sigmoid_() * self.conv_w(f_w.transpose(2, 3)).sigmoid_()

    def prune_channels(self, keep: torch.Tensor) -> None:
        """Keep channels ``keep``: conv1's inputs, conv_h's and conv_w's outputs (the bottleneck is unchanged).

        Exact: pooling is per channel and a removed channel's zero contributes nothing to conv1.

        Args:
            keep (torch.Tensor): Channels to keep.
        """
        slice_conv2d(self.conv1, in_keep=keep)
        slice_conv2d(self.conv_h, out_keep=keep)
        slice_conv2d(self.conv_w, out_keep=keep)
        self.c1 = len(keep)
