"""SimAM: a simple, parameter-free attention module.

Paper: "SimAM: A Simple, Parameter-Free Attention Module for Convolutional Neural Networks",
Yang et al., ICML 2021 (https://proceedings.mlr.press/v139/yang21o.html).

Each neuron's importance is the inverse of its minimal energy against the other neurons of its channel,
which has a closed form (per sample and channel, over the H*W positions):

    d = (x - mean(x))^2,   v = sum(d) / n,   n = H*W - 1
    E_inv = d / (4 * (v + lambda)) + 0.5
    y = x * sigmoid(E_inv)

Shape contract: (B, C, H, W) -> (B, C, H, W); zero parameters.

Numerics: the statistics are computed in at least float32 whatever the input dtype (in float16 the sum of squared
deviations overflows on large maps and the gate collapses). On 1x1 maps the paper's ``n`` is 0 and ``v`` is 0/0;
``n`` is floored at 1 there, so ``d = v = 0`` and the gate is ``sigmoid(0.5)`` (every neuron equally important).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..registry import BLOCKS
from .base import Arg, AttentionGate

__all__ = ["SimAM"]


@BLOCKS.register
class SimAM(AttentionGate):
    """Parameter-free 3-D attention from the closed-form minimal energy of each neuron.

    Attributes:
        e_lambda (float): Regulariser lambda in the energy function.
    """

    rank = 20
    args = (Arg("e_lambda", 1e-4, low=0.0, high=10.0, low_open=True, doc="energy regulariser lambda (paper: 1e-4)"),)
    aliases = ("SimAMAttention", "SimAM_Attention")
    paper = "Yang et al., ICML 2021"
    notes = (
        'computes its statistics in float32 whatever the input dtype (float16 overflows on large maps), and on '
        "1x1 maps, where the paper's `n = H*W - 1` is 0, it floors `n` at 1 (gate `sigmoid(0.5)`)."
    )
    formula = "y = x * sigmoid((x - mu)^2 / (4 (var + lambda)) + 0.5)"
    params = "0"
    fresh_gate = True

    def __init__(self, c1: int, e_lambda: float = 1e-4):
        """Initialise SimAM.

        Args:
            c1 (int): Input channels (unused by the math; kept for the YAML contract ``Block(c1, *args)``).
            e_lambda (float): Energy regulariser lambda, in (0, 10]. 1e-4 is the module default of the paper's code.
        """
        super().__init__(c1)
        (self.e_lambda,) = self.checked(e_lambda=e_lambda)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """Compute the gate ``sigmoid(E_inv)``, so that ``forward(x) == x * gate(x)``.

        Args:
            x (torch.Tensor): Input of shape (B, C, H, W).

        Returns:
            (torch.Tensor): Gate in (0.5, 1) of shape (B, C, H, W), dtype of ``x``; a new tensor.
        """
        n = max(x.shape[2] * x.shape[3] - 1, 1)
        xf = x.to(torch.promote_types(x.dtype, torch.float32))  # fp16/bf16 -> fp32; fp64 stays
        d = xf - xf.mean(dim=(2, 3), keepdim=True)  # float32 input: the one full-size temporary, it becomes the gate
        if torch.is_grad_enabled():  # autograd: the plain formula (autograd keeps what the in-place ops overwrite)
            d = d.square_()
            v = d.sum(dim=(2, 3), keepdim=True) / n
            return d.div_(4 * (v + self.e_lambda)).add_(0.5).sigmoid_().to(x.dtype)
        # d^2 / (4 (v + lambda)) = (d * s)^2 with s = rsqrt(4 (v + lambda)); vector_norm sums d^2 without a copy
        v = torch.linalg.vector_norm(d, dim=(2, 3), keepdim=True).square_().div_(n)
        d.mul_(torch.rsqrt(v.add_(self.e_lambda).mul_(4)))
        return torch.addcmul(d.new_tensor(0.5), d, d, out=d).sigmoid_().to(x.dtype)  # 0.5 + (d s)^2, in place

    def prune_channels(self, keep: torch.Tensor) -> None:
        """Keep channels ``keep``: nothing to slice (the gate is per channel and parameter-free).

        Args:
            keep (torch.Tensor): Channels to keep.
        """
        self.c1 = len(keep)

    def extra_repr(self) -> str:
        """Return the lambda for ``print(model)``."""
        return f"e_lambda={self.e_lambda:g}"
