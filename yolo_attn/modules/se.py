"""SE: Squeeze-and-Excitation.

Paper: "Squeeze-and-Excitation Networks", Hu et al., CVPR 2018 (arXiv 1709.01507).

    s = mean_{H,W}(x)                                  # squeeze: (B, C, 1, 1)
    g = sigmoid(W2 @ relu(W1 @ s + b1) + b2)           # excitation: C -> rd -> C
    y = x * g

Reduced width rule (as timm's ``make_divisible``): ``rd = make_divisible(C / reduction, 8)``, i.e. C/r rounded to
the nearest multiple of 8, never below 8 and never more than 10% below C/r. YOLOv8n's 32-256 channel layers would
otherwise get 2-16 hidden units at r=16; 8 keeps the bottleneck meaningful on thin layers.

Parameters added: ``2 * C * rd + rd + C`` (two 1x1 convolutions with bias).
Shape contract: (B, C, H, W) -> (B, C, H, W).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import BLOCKS
from .base import Arg, AttentionGate, slice_conv2d

__all__ = ["SE", "make_divisible"]


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``v`` to the nearest multiple of ``divisor``, at least ``min_value``, and not below 90% of ``v``.

    Args:
        v (float): Value to round.
        divisor (int): Multiple to round to.
        min_value (int, optional): Floor; defaults to ``divisor``.

    Returns:
        (int): The rounded value.
    """
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


@BLOCKS.register
class SE(AttentionGate):
    """Squeeze-and-Excitation channel attention.

    Attributes:
        fc1 (nn.Conv2d): Squeeze FC, C -> rd (1x1 convolution with bias; applied as a matmul).
        fc2 (nn.Conv2d): Excitation FC, rd -> C (1x1 convolution with bias; applied as a matmul).
    """

    rank = 30
    args = (
        Arg("reduction", 16, low=0.0, high="c1", low_open=True, doc="reduction ratio r: hidden width C/r"),
        Arg("divisor", 8, kind="int", low=1, high=1024, doc="the hidden width is a multiple of this, at least this"),
    )
    aliases = ("SEAttention", "SEBlock", "SELayer")
    paper = "Hu et al., CVPR 2018, [arXiv 1709.01507](https://arxiv.org/abs/1709.01507)"
    notes = (
        'reduced width `rd = make_divisible(C / reduction, 8)`: C/r rounded to a multiple of 8, at least 8, as in '
        "timm. YOLOv8n's 32-256 channel layers would otherwise get 2-16 hidden units."
    )
    formula = "y = x * sigmoid(W2 relu(W1 avgpool(x)))"
    params = "2*C*rd + rd + C"
    config_args = (16,)

    def __init__(self, c1: int, reduction: float = 16, divisor: int = 8):
        """Initialise SE.

        Args:
            c1 (int): Input channels.
            reduction (float): Reduction ratio r (> 0); the paper uses 16.
            divisor (int): The reduced width is a multiple of this and at least this (>= 1); 8 as in timm.
        """
        super().__init__(c1)
        self.reduction, self.divisor = self.checked(reduction=reduction, divisor=divisor)
        c1, reduction, divisor = self.c1, self.reduction, self.divisor
        self.rd = make_divisible(c1 / reduction, divisor)
        self.fc1 = nn.Conv2d(c1, self.rd, 1, bias=True)
        self.fc2 = nn.Conv2d(self.rd, c1, 1, bias=True)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """Compute the channel gate, so that ``forward(x) == x * gate(x)``.

        Args:
            x (torch.Tensor): Input of shape (B, C, H, W).

        Returns:
            (torch.Tensor): Gate in (0, 1) of shape (B, C, 1, 1).
        """
        b, c = x.shape[:2]
        # the FCs as matmuls on (B, C): 1x1 convolutions on a 1x1 map cost more in call overhead than in arithmetic
        h = F.linear(x.mean((2, 3)), self.fc1.weight.flatten(1), self.fc1.bias).relu_()
        return F.linear(h, self.fc2.weight.flatten(1), self.fc2.bias).sigmoid_().view(b, c, 1, 1)

    def prune_channels(self, keep: torch.Tensor) -> None:
        """Keep channels ``keep``: the squeeze FC's inputs and the excitation FC's outputs (hidden width unchanged).

        Args:
            keep (torch.Tensor): Channels to keep.
        """
        slice_conv2d(self.fc1, in_keep=keep)
        slice_conv2d(self.fc2, out_keep=keep)
        self.c1 = len(keep)
