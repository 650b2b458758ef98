"""EMA: Efficient Multi-Scale Attention with cross-spatial learning.

Paper: "Efficient Multi-Scale Attention Module with Cross-Spatial Learning", Ouyang et al., ICASSP 2023
(arXiv 2305.13563). Authors' code: https://github.com/YOLOonMe/EMA-attention-module (``EMA``).

The channels are split into G groups of ``cg = C / G`` sub-features, each processed alike (x_g: (cg, H, W)):

    a_h, a_w = split(conv1x1([mean_W(x_g); mean_H(x_g)]), [H, W])       # 1x1 branch, shared cg -> cg conv
    x1 = GroupNorm(x_g * sigmoid(a_h) * sigmoid(a_w^T))                  # one group per channel (cg groups)
    x2 = conv3x3(x_g)                                                    # 3x3 branch, cg -> cg
    m  = softmax_c(avgpool(x1)) @ flat(x2) + softmax_c(avgpool(x2)) @ flat(x1)   # cross-spatial: (1, H*W)
    y_g = x_g * sigmoid(m)                                                # one spatial map per group

Group count: the authors' ``factor`` G (default 32) needs ``C % G == 0`` and at least one channel per group. Here
``G`` is the largest divisor of C that is <= ``factor`` and <= C // 2, so every group has at least 2 channels (with
one channel the softmax over the channel descriptor is identically 1 and the cross-spatial weighting degenerates);
``G = 1`` when C < 2 (or C has no such divisor, e.g. a prime). C = 64 -> 32 groups of 2, C = 256 -> 32 of 8,
C = 24 -> 12 of 2, C = 16 -> 8 of 2. For C divisible by ``factor`` with C >= 2 * factor this is the authors' G.

1x1 maps: GroupNorm needs more than one value per group (a PyTorch rule, even in eval mode; the authors' code fails
there when B * G = 1). On a 1x1 map the normalised value is exactly 0, so x1 is the GroupNorm shift beta, computed
directly.

Parameters added: ``10*cg^2 + 4*cg``, cg = C / G (conv1x1 ``cg^2 + cg``, conv3x3 ``9*cg^2 + cg``, GroupNorm
``2*cg``).
Shape contract: (B, C, H, W) -> (B, C, H, W).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..registry import BLOCKS
from .base import Arg, AttentionGate

__all__ = ["EMA", "ema_groups"]


def ema_groups(c: int, factor: int) -> int:
    """Return the group count: the largest divisor of ``c`` that is <= ``factor`` and leaves >= 2 channels per group.

    Args:
        c (int): Channels, >= 1.
        factor (int): Requested groups (the authors' ``factor``), >= 1.

    Returns:
        (int): The groups G (1 when no divisor > 1 qualifies).
    """
    return next((g for g in range(min(factor, c // 2), 1, -1) if c % g == 0), 1)


@BLOCKS.register
class EMA(AttentionGate):
    """Efficient multi-scale attention: grouped 1x1 (coordinate) and 3x3 branches, cross-spatial softmax aggregation.

    Attributes:
        factor (int): Requested groups.
        groups (int): Groups in use, from :func:`ema_groups` (the authors' ``groups``).
        gn (nn.GroupNorm): Per-channel normalisation of the 1x1 branch (cg groups of cg channels).
        conv1x1 (nn.Conv2d): Shared 1x1 convolution cg -> cg on the pooled features (with bias).
        conv3x3 (nn.Conv2d): 3x3 convolution cg -> cg (with bias).
    """

    rank = 80
    args = (Arg("factor", 32, kind="int", low=1, high="c1", doc="channel groups G (reduced: >= 2 channels per group)"),)
    aliases = ("EMA_attention",)
    paper = "Ouyang et al., ICASSP 2023, [arXiv 2305.13563](https://arxiv.org/abs/2305.13563)"
    notes = (
        "is the authors' module. Their `factor` (G = 32 groups) needs `C % G == 0`; here G is the largest divisor "
        'of C that is <= `factor` and leaves at least 2 channels per group (64 -> 32, 24 -> 12, 16 -> 8). On 1x1 '
        "maps, where the authors' GroupNorm fails, the normalised value is exactly 0 and the GroupNorm shift is "
        'used directly.'
    )
    formula = "y_g = x_g * sigmoid(softmax(avgpool(x1)) flat(x2) + softmax(avgpool(x2)) flat(x1)), per channel group"
    params = "10*cg^2 + 4*cg, cg = C / G"
    config_args = ()  # [] in generated configs: a leading 32 reads as a channel count on 32-channel rows
    fresh_gate = True
    prune_exact = False  # not sliceable by channel: the groups share their weights (prune_channels not implemented)

    def __init__(self, c1: int, factor: int = 32):
        """Initialise EMA.

        Args:
            c1 (int): Input channels.
            factor (int): Requested channel groups (>= 1); the authors use 32. Reduced by :func:`ema_groups`.
        """
        super().__init__(c1)
        (self.factor,) = self.checked(factor=factor)
        self.groups = ema_groups(self.c1, self.factor)
        cg = self.c1 // self.groups
        self.gn = nn.GroupNorm(cg, cg)
        self.conv1x1 = nn.Conv2d(cg, cg, 1)
        self.conv3x3 = nn.Conv2d(cg, cg, 3, padding=1)

    def _group_norm(self, t: torch.Tensor) -> torch.Tensor:
        """GroupNorm that also accepts 1x1 maps, where ``(t - mean) = 0`` leaves the shift beta."""
        if t.shape[2] * t.shape[3] > 1:
            return self.gn(t)
        return (t - t) * self.gn.weight[:, None, None] + self.gn.bias[:, None, None]  # t - t keeps NaN/inf

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """Compute the per-group spatial gate, expanded over each group's channels.

        Args:
            x (torch.Tensor): Input of shape (B, C, H, W).

        Returns:
            (torch.Tensor): Gate in (0, 1) of shape (B, C, H, W); a new tensor.
        """
        b, c, h, w = x.shape
        g, cg = self.groups, c // self.groups
        gx = x.reshape(b * g, cg, h, w)
        z = torch.cat((gx.mean(3, keepdim=True), gx.mean(2, keepdim=True).transpose(2, 3)), 2)  # (BG, cg, H + W, 1)
        a_h, a_w = self.conv1x1(z).split((h, w), 2)
        x1 = self._group_norm(gx * a_h.sigmoid() * a_w.transpose(2, 3).sigmoid())
        x2 = self.conv3x3(gx)
        d1 = x1.mean((2, 3)).softmax(-1).unsqueeze(1)  # (BG, 1, cg): softmax over each branch's channel descriptor
        d2 = x2.mean((2, 3)).softmax(-1).unsqueeze(1)
        m = torch.matmul(d1, x2.reshape(b * g, cg, h * w)) + torch.matmul(d2, x1.reshape(b * g, cg, h * w))
        return m.sigmoid_().view(b, g, 1, h, w).expand(b, g, cg, h, w).contiguous().view(b, c, h, w)  # a real copy
