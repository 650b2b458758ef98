"""ECA: Efficient Channel Attention.

Paper: "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural Networks", Wang et al., CVPR 2020
(arXiv 1910.03151). Authors' code: https://github.com/BangguWu/ECANet (``eca_layer``).

A 1-D convolution of kernel size k across the channel descriptor replaces SE's two fully connected layers: each
channel's weight depends on its k neighbours, with no dimensionality reduction and no bias.

    s = mean_{H,W}(x)                                  # (B, C)
    g = sigmoid(conv1d_k(s))                           # across channels, zero padding k // 2, no bias
    y = x * g

Kernel size rule (adaptive, the paper's ``psi(C)`` as the authors' code computes it), gamma = 2, b = 1:

    t = int(|(log2(C) + b) / gamma|),   k = t if t is odd else t + 1

so C = 16 -> 3, 64 -> 3, 256 -> 5, 1024 -> 5, 2048 -> 7. An explicit ``k`` replaces the rule (``null`` = the rule).

Parameters added: ``k`` (one shared 1-D kernel).
Shape contract: (B, C, H, W) -> (B, C, H, W); the gate is (B, C, 1, 1).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import BLOCKS
from .base import Arg, AttentionGate

__all__ = ["ECA", "eca_kernel_size"]


def eca_kernel_size(c: int, gamma: float = 2, b: float = 1) -> int:
    """Return ECA's adaptive kernel size for ``c`` channels: ``|(log2(c) + b) / gamma|`` truncated, made odd upwards.

    Args:
        c (int): Channels, >= 1.
        gamma (float): Slope of the channel/kernel mapping (> 0).
        b (float): Offset of the mapping.

    Returns:
        (int): The odd kernel size, >= 1.
    """
    t = int(abs((math.log2(c) + b) / gamma))
    return t if t % 2 else t + 1


@BLOCKS.register
class ECA(AttentionGate):
    """Efficient channel attention: a bias-free 1-D convolution across the pooled channels, then sigmoid.

    Attributes:
        k (int): Kernel size in use (given, or from the adaptive rule).
        conv (nn.Conv1d): The 1-D convolution, 1 -> 1 channel, no bias (the authors' ``conv``).
    """

    rank = 60
    args = (
        Arg("k", None, kind="int", low=1, high=15, odd=True, allow_none=True, doc="kernel size across channels"),
        Arg("gamma", 2, low=0.0, high=16.0, low_open=True, doc="kernel size rule: slope gamma"),
        Arg("b", 1, low=0.0, high=16.0, doc="kernel size rule: offset b"),
    )
    aliases = ("ECAAttention", "eca_layer")
    paper = "Wang et al., CVPR 2020, [arXiv 1910.03151](https://arxiv.org/abs/1910.03151)"
    notes = (
        "kernel size `k = |(log2 C + b) / gamma|` made odd as the authors' code (C = 64 -> 3, C = 256 -> 5); `k=` "
        'overrides it.'
    )
    formula = "y = x * sigmoid(conv1d_k(avgpool(x))), k = odd(|(log2 C + b) / gamma|)"
    params = "k"
    prune_exact = False  # the 1-D kernel mixes neighbouring channels: removing channels changes the neighbours

    def __init__(self, c1: int, k: int | None = None, gamma: float = 2, b: float = 1):
        """Initialise ECA.

        Args:
            c1 (int): Input channels.
            k (int, optional): Odd kernel size across channels; None derives it from ``c1`` with gamma and b.
            gamma (float): Kernel size rule slope (> 0); the paper uses 2.
            b (float): Kernel size rule offset (>= 0); the paper uses 1.
        """
        super().__init__(c1)
        k, self.gamma, self.b = self.checked(k=k, gamma=gamma, b=b)
        self.k = eca_kernel_size(self.c1, self.gamma, self.b) if k is None else k
        self.conv = nn.Conv1d(1, 1, self.k, padding=self.k // 2, bias=False)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """Compute the channel gate, so that ``forward(x) == x * gate(x)``.

        Args:
            x (torch.Tensor): Input of shape (B, C, H, W).

        Returns:
            (torch.Tensor): Gate in (0, 1) of shape (B, C, 1, 1).
        """
        b, c = x.shape[:2]
        s = x.mean((2, 3)).unsqueeze(1)  # (B, 1, C): the channels are the 1-D sequence
        return F.conv1d(s, self.conv.weight, padding=self.k // 2).sigmoid_().view(b, c, 1, 1)

    def prune_channels(self, keep: torch.Tensor) -> None:
        """Keep channels ``keep``: the shared kernel has nothing to slice (the neighbours change: not exact).

        Args:
            keep (torch.Tensor): Channels to keep.
        """
        self.c1 = len(keep)
