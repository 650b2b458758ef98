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

from ._checks import check_channels, check_number

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


class SE(nn.Module):
    """Squeeze-and-Excitation channel attention.

    Attributes:
        fc1 (nn.Conv2d): Squeeze FC, C -> rd (1x1 convolution with bias; applied as a matmul).
        fc2 (nn.Conv2d): Excitation FC, rd -> C (1x1 convolution with bias; applied as a matmul).
    """

    def __init__(self, c1: int, reduction: float = 16, divisor: int = 8):
        """Initialise SE.

        Args:
            c1 (int): Input channels.
            reduction (float): Reduction ratio r (> 0); the paper uses 16.
            divisor (int): The reduced width is a multiple of this and at least this (>= 1); 8 as in timm.
        """
        super().__init__()
        c1 = check_channels("SE", c1)
        reduction = check_number("SE", "reduction", reduction, 0.0, low_open=True)
        divisor = check_number("SE", "divisor", divisor, 1, integer=True)
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the SE gate.

        Args:
            x (torch.Tensor): Input of shape (B, C, H, W).

        Returns:
            (torch.Tensor): ``x`` scaled per channel, same shape.
        """
        return x * self.gate(x)
