"""CBAMAttention: the Convolutional Block Attention Module as in its paper.

Paper: "CBAM: Convolutional Block Attention Module", Woo et al., ECCV 2018 (arXiv 1807.06521).
Authors' code: https://github.com/Jongchan/attention-module (``MODELS/cbam.py``).

A channel gate from average- and max-pooled descriptors through one shared MLP, then a spatial gate from the
channel-wise mean and max of the channel-gated features:

    Mc = sigmoid(MLP(avgpool(x)) + MLP(maxpool(x)))    # MLP: Linear C -> rd, ReLU, Linear rd -> C (with biases)
    x' = Mc * x
    Ms = sigmoid(BN(conv_kxk([mean_C(x'); max_C(x')])))   # 2 -> 1 channel, k = 7, no bias
    y  = Ms * x' = x * (Mc * Ms)                      # the gate is Mc * Ms, (B, C, H, W)

As the authors' code, the spatial convolution has no bias and is followed by a one-channel BatchNorm (their
``BasicConv``); the paper's formula omits that normalisation. The two pooled maps are stacked in the paper's order
``[avg; max]`` (the authors' ``ChannelPool`` stacks ``[max, mean]``: the same model with the two input channels of
the 7x7 kernel swapped).

Hidden width: ``rd = make_divisible(C / reduction, divisor)`` as SE (C/r rounded to a multiple of 8, at least 8),
where the authors' code uses ``C // r``; YOLOv8n's 32-256 channel layers would otherwise get 2-16 hidden units.

How it differs from Ultralytics' ``CBAM`` (``ultralytics.nn.modules.conv.CBAM``, which this block does not shadow):
Ultralytics' channel branch is ``sigmoid(conv1x1(avgpool(x)))``, one full C -> C 1x1 convolution with bias on the
average-pooled descriptor only (no max-pooling, no reduction MLP); its spatial branch is a 7x7 convolution without
BatchNorm. This block follows the paper: average- and max-pooled descriptors through a shared reduction MLP.

Parameters added: ``2*C*rd + rd + C`` (MLP) ``+ 2*k*k`` (spatial conv) ``+ 2`` (BN affine).
Shape contract: (B, C, H, W) -> (B, C, H, W).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import BLOCKS
from .base import Arg, AttentionGate, slice_param
from .se import make_divisible

__all__ = ["CBAMAttention"]


@BLOCKS.register
class CBAMAttention(AttentionGate):
    """CBAM as published: channel gate from avg- and max-pooled descriptors (shared MLP), then a kxk spatial gate.

    Attributes:
        rd (int): Hidden width of the channel MLP.
        fc1 (nn.Linear): MLP layer C -> rd.
        fc2 (nn.Linear): MLP layer rd -> C.
        conv (nn.Conv2d): Spatial convolution, 2 -> 1 channel, k x k, no bias; input channels ``[mean, max]``.
        bn (nn.BatchNorm2d): One-channel BatchNorm after the spatial convolution (authors' code).
    """

    rank = 50
    args = (
        Arg("reduction", 16, low=0.0, high="c1", low_open=True, doc="reduction ratio r of the channel MLP"),
        Arg("k", 7, kind="int", low=1, high=15, odd=True, doc="spatial kernel size (paper: 7)"),
        Arg("divisor", 8, kind="int", low=1, high=1024, doc="MLP hidden width: a multiple of this, at least this"),
    )
    paper = "Woo et al., ECCV 2018, [arXiv 1807.06521](https://arxiv.org/abs/1807.06521)"
    notes = (
        'is CBAM as published (average- and max-pooled descriptors through one shared reduction MLP, then a 7x7 '
        "spatial gate on `[mean_C; max_C]`, with the authors' one-channel BatchNorm after the 7x7 conv), hidden "
        "width as SE's. It is not Ultralytics' `CBAM` (which the kit leaves untouched): Ultralytics' channel "
        'branch is `sigmoid(conv1x1(avgpool(x)))`, one full C -> C convolution on the average-pooled descriptor '
        'only (no max-pooling, no reduction MLP), and its spatial conv has no BatchNorm.'
    )
    formula = "y = x * Mc * Ms, Mc = sigmoid(MLP(avg x) + MLP(max x)), Ms = sigmoid(conv7x7([mean_C; max_C](Mc x)))"
    params = "2*C*rd + rd + C + 2*k^2 + 2, rd = C/r to a multiple of 8 (>= 8)"
    config_args = ()  # [] in generated configs: a leading 16 reads as a channel count on 16-channel rows
    fresh_gate = True
    prune_exact = False  # the channel-wise max over x' sees the removed channels' zeros

    def __init__(self, c1: int, reduction: float = 16, k: int = 7, divisor: int = 8):
        """Initialise CBAMAttention.

        Args:
            c1 (int): Input channels.
            reduction (float): Reduction ratio r of the channel MLP (> 0); the paper uses 16.
            k (int): Odd spatial kernel size; the paper uses 7.
            divisor (int): The MLP hidden width is a multiple of this and at least this (>= 1); 8 as SE.
        """
        super().__init__(c1)
        self.reduction, self.k, self.divisor = self.checked(reduction=reduction, k=k, divisor=divisor)
        self.rd = make_divisible(self.c1 / self.reduction, self.divisor)
        self.fc1 = nn.Linear(self.c1, self.rd)
        self.fc2 = nn.Linear(self.rd, self.c1)
        self.conv = nn.Conv2d(2, 1, self.k, padding=self.k // 2, bias=False)
        self.bn = nn.BatchNorm2d(1)

    def channel_gate(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``Mc = sigmoid(MLP(avgpool(x)) + MLP(maxpool(x)))``.

        Args:
            x (torch.Tensor): Input of shape (B, C, H, W).

        Returns:
            (torch.Tensor): Channel gate of shape (B, C, 1, 1).
        """
        b, c = x.shape[:2]
        pooled = torch.cat((x.mean((2, 3)), x.amax((2, 3))))  # (2B, C): both descriptors through the MLP at once
        a = self.fc2(F.relu(self.fc1(pooled)))
        return (a[:b] + a[b:]).sigmoid_().view(b, c, 1, 1)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """Compute ``Mc * Ms``, so that ``forward(x) == Ms * (Mc * x)``.

        Args:
            x (torch.Tensor): Input of shape (B, C, H, W).

        Returns:
            (torch.Tensor): Gate in (0, 1) of shape (B, C, H, W); a new tensor.
        """
        mc = self.channel_gate(x)
        xc = x * mc
        pooled = torch.cat((xc.mean(1, keepdim=True), xc.amax(1, keepdim=True)), 1)  # (B, 2, H, W)
        ms = self.bn(self.conv(pooled)).sigmoid_()
        if torch.is_grad_enabled() or torch.result_type(mc, ms) != xc.dtype:  # (mixed dtypes under autocast)
            return mc * ms
        return torch.mul(mc, ms, out=xc)  # without autograd x' is no longer needed: its memory becomes the gate

    def prune_channels(self, keep: torch.Tensor) -> None:
        """Keep channels ``keep``: the MLP's inputs and outputs; the spatial mean is rescaled to the old channel count.

        ``mean_C`` over the kept channels times ``len(keep) / C`` equals the mean over all channels when the removed
        ones are zero, so the mean input of the spatial gate is unchanged; the channel-wise max is unchanged wherever
        a kept channel is >= 0 (hence ``prune_exact = False``).

        Args:
            keep (torch.Tensor): Channels to keep.
        """
        slice_param(self.fc1, "weight", keep, 1)
        slice_param(self.fc2, "weight", keep, 0)
        slice_param(self.fc2, "bias", keep, 0)
        with torch.no_grad():
            self.conv.weight[:, 0].mul_(len(keep) / self.c1)
        self.fc1.in_features = self.fc2.out_features = self.c1 = len(keep)
