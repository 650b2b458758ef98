"""NAM: Normalization-based Attention Module.

Paper: "NAM: Normalization-based Attention Module", Liu et al., 2021 (arXiv 2111.12419).
Authors' code: https://github.com/Christian-lyc/NAM

Channel sub-module (the authors' ``Channel_Att``): an ordinary BatchNorm2d over the input whose own scale factors
gamma weigh the channels,

    W_gamma = |gamma| / sum(|gamma|)              # from ``bn.weight.data``: no gradient through W_gamma
    M_c = sigmoid(W_gamma * BN(x))
    y = M_c * x                                   # the input is gated, not the BN output

Spatial sub-module (optional, ``spatial=True``): the paper's "pixel normalisation" ``M_s = sigmoid(W_lambda *
BN_s(F))``. The authors' first upload used a BatchNorm1d whose "channels" were the H*W pixels, which fixes the input
size. Here the pixel normalisation is size-agnostic: each pixel's feature vector is normalised over the channels
(per sample and position, like a channels-first LayerNorm) with learnable scale factors lambda and shift beta, and
the lambda-weighted sum over channels gives one gate per pixel, applied after the channel gate (CBAM order):

    z = (x - mean_C(x)) / sqrt(var_C(x) + eps) * lambda + beta
    W_lambda = |lambda| / sum(|lambda|)
    M_s = sigmoid(sum_C(W_lambda * z))            # (B, 1, H, W)
    y = M_s * x

Default: ``spatial=False``, as in the authors' released code and the NAM-in-YOLOv8 write-ups.

Parameters added: 2C (BN affine gamma, beta), plus 2C (lambda, beta) with ``spatial=True``.
Shape contract: (B, C, H, W) -> (B, C, H, W). At initialisation W_gamma = 1/C, so the gate is about 0.5 everywhere.
The L1 sparsity penalty on gamma and lambda is applied by the training callback, not here.

Inference: ``fuse()`` folds the BatchNorm (running statistics) and W_gamma into ``M_c = sigmoid(a * x + b)``, one
per-channel affine map, which Ultralytics' ``model.fuse()`` (``val``, ``predict``, ``export``) calls through the kit's
fuse hook. Training mode always runs the BatchNorm; ``train()`` drops the fold (see ``fuse()``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..registry import BLOCKS
from .base import Arg, AttentionGate, slice_norm

__all__ = ["NAM", "PixelNorm"]


def _l1_weights(scale: torch.Tensor) -> torch.Tensor:
    """Return ``|scale| / sum(|scale|)`` without gradient, as the authors' ``bn.weight.data`` computation."""
    w = scale.detach().abs()
    return w / w.sum().clamp_min(torch.finfo(w.dtype).tiny)  # clamp: an all-zero gamma gives 0, not NaN


def _affine(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Return ``a * x + b`` with per-channel ``a``, ``b`` of shape (C,), as a new tensor.

    Computed by the inference BatchNorm kernel with mean 0, variance 1 and eps 0 (so its scale is exactly ``a``): one
    vectorised pass, about twice as fast on the CPU as ``torch.addcmul`` with broadcast (C, 1, 1) operands.
    """
    c = x.shape[1]
    zero, one = torch.zeros(c, dtype=x.dtype, device=x.device), torch.ones(c, dtype=x.dtype, device=x.device)
    return F.batch_norm(x, zero, one, a.to(x.dtype), b.to(x.dtype), False, 0.0, 0.0)


class PixelNorm(nn.Module):
    """Size-agnostic pixel normalisation: normalise each pixel over the channels, then scale (lambda) and shift.

    Attributes:
        weight (nn.Parameter): Scale factors lambda, shape (C,).
        bias (nn.Parameter): Shift beta, shape (C,).
        eps (float): Variance epsilon.
    """

    def __init__(self, c1: int, eps: float = 1e-5):
        """Initialise the pixel normalisation.

        Args:
            c1 (int): Channels.
            eps (float): Variance epsilon.
        """
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c1))
        self.bias = nn.Parameter(torch.zeros(c1))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise over channels.

        Args:
            x (torch.Tensor): Input of shape (B, C, H, W).

        Returns:
            (torch.Tensor): Normalised, scaled and shifted tensor of the same shape.
        """
        var, mean = torch.var_mean(x, dim=1, unbiased=False, keepdim=True)
        z = (x - mean) * torch.rsqrt(var + self.eps)
        return z * self.weight[:, None, None] + self.bias[:, None, None]


@BLOCKS.register
class NAM(AttentionGate):
    """Normalization-based attention: BN scale factors as channel weights, optional pixel-normalisation gate.

    Attributes:
        bn (nn.BatchNorm2d): Channel normalisation; its weight is gamma.
        spatial (PixelNorm | None): Pixel normalisation; its weight is lambda. None when disabled.
    """

    rank = 10
    args = (Arg("spatial", False, kind="bool", doc="add the pixel-normalisation gate"),)
    aliases = ("NAMAttention",)
    paper = "Liu et al. 2021, [arXiv 2111.12419](https://arxiv.org/abs/2111.12419)"
    notes = (
        "channel gate is the authors' code (weights from `bn.weight.data`, no gradient through the "
        'normalisation). The paper\'s spatial "pixel normalisation" was a BatchNorm1d over a fixed number of '
        'pixels; here it is size-agnostic: each pixel is normalised over the channels with scale factors lambda, '
        "and the lambda-weighted sum gives one gate per pixel. Default `spatial=False`, as in the authors' "
        'released code.'
    )
    formula = "y = x * sigmoid(BN(x) * abs(g) / sum(abs(g))), g = the BN's own scale factors"
    params = "2C (4C with spatial)"
    config_params = {"nam_penalty": 1.0e-4}
    config_docs = {"nam_penalty": "L1 sparsity penalty p on the NAM scale factors (paper default; 0 turns it off)"}
    fresh_gate = True

    def __init__(self, c1: int, spatial: bool = False):
        """Initialise NAM.

        Args:
            c1 (int): Input channels.
            spatial (bool): Add the pixel-normalisation (spatial) sub-module after the channel one.
        """
        super().__init__(c1)
        (spatial,) = self.checked(spatial=spatial)
        self.bn = nn.BatchNorm2d(self.c1)
        self.spatial = PixelNorm(self.c1) if spatial else None
        self.prune_exact = not spatial  # the pixel normalisation mixes all channels
        self.register_buffer("fold_a", None, persistent=False)  # per-channel a, b of the folded gate (fuse())
        self.register_buffer("fold_b", None, persistent=False)

    def scale_factors(self) -> list[nn.Parameter]:
        """Return the scale factors the NAM sparsity penalty acts on: gamma, and lambda when spatial.

        Returns:
            (list[nn.Parameter]): The parameters.
        """
        return [self.bn.weight] + ([self.spatial.weight] if self.spatial is not None else [])

    @property
    def fused(self) -> bool:
        """Whether the channel gate is folded (see ``fuse()``); the module then gates with ``sigmoid(a * x + b)``."""
        return self._buffers.get("fold_a") is not None  # .get: modules pickled before folding existed lack it

    @torch.no_grad()
    def fuse(self) -> NAM:
        """Fold the BatchNorm and the weights W_gamma into one per-channel affine map (inference only).

        With running statistics, ``W_gamma * BN(x) = a * x + b`` where ``s = gamma / sqrt(var + eps)``,
        ``a = W_gamma * s`` and ``b = W_gamma * (beta - mean * s)``, so the channel gate becomes ``sigmoid(a * x + b)``
        and the BN pass disappears. The BN itself is kept (saliency reports and the penalty read gamma; state dicts
        stay the same), and ``a``, ``b`` are non-persistent buffers: pickled with the module, never in state dicts.
        ``train()`` drops the fold, so training always runs the BatchNorm; call ``fuse()`` again afterwards. The
        spatial pixel normalisation depends on each pixel's channels and is not folded.

        Returns:
            (NAM): This module, fused.
        """
        bn = self.bn
        if bn.running_mean is None or bn.running_var is None:
            raise RuntimeError("NAM.fuse(): the BatchNorm has no running statistics (track_running_stats=False)")
        w = _l1_weights(bn.weight).float()
        s = bn.weight.detach().float() * torch.rsqrt(bn.running_var.float() + bn.eps)
        a = (w * s)[:, None, None]
        b = (w * (bn.bias.detach().float() - bn.running_mean.float() * s))[:, None, None]
        dtype = bn.weight.dtype  # follow the module's dtype (a later .half() converts the buffers too)
        self.register_buffer("fold_a", a.to(dtype), persistent=False)
        self.register_buffer("fold_b", b.to(dtype), persistent=False)
        return self

    def unfuse(self) -> NAM:
        """Drop the folded gate, back to the BatchNorm path (``train()`` calls this).

        Returns:
            (NAM): This module, unfused.
        """
        self.register_buffer("fold_a", None, persistent=False)  # None buffers: skipped by state_dict and .to()
        self.register_buffer("fold_b", None, persistent=False)
        return self

    def train(self, mode: bool = True) -> NAM:
        """Set training mode; entering it drops the fold, which would go stale as gamma and the statistics change.

        Args:
            mode (bool): Training (True) or evaluation (False) mode.

        Returns:
            (NAM): This module.
        """
        if mode and self.fused:
            self.unfuse()
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        """Load as usual, then drop the fold: it was computed from the weights being replaced."""
        super()._load_from_state_dict(*args, **kwargs)
        if self.fused:
            self.unfuse()

    def _channel_gate(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``M_c``, a new tensor (callers may modify it in place)."""
        if self.fused:
            if not self.training:  # sigmoid(a * x + b): the affine map as an inference BatchNorm, one vectorised pass
                return _affine(x, self.fold_a.view(-1), self.fold_b.view(-1)).sigmoid_()
            self.unfuse()  # fused, then run in training mode: the statistics change, the fold would go stale
        w = _l1_weights(self.bn.weight).to(x.dtype)[:, None, None]
        return self.bn(x).mul_(w).sigmoid_()  # in place on BN's output: its backward does not need it

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """Compute the combined multiplicative gate, so that ``forward(x) == x * gate(x)``.

        Args:
            x (torch.Tensor): Input of shape (B, C, H, W).

        Returns:
            (torch.Tensor): Gate in (0, 1) of shape (B, C, H, W): ``M_c``, times ``M_s`` when spatial. Folded when
                fused and in eval mode.
        """
        g = self._channel_gate(x)
        if self.spatial is not None:
            w = _l1_weights(self.spatial.weight).to(x.dtype)[:, None, None]
            g = g * torch.sigmoid((self.spatial(x * g) * w).sum(1, keepdim=True))
        return g

    @torch.no_grad()
    def prune_channels(self, keep: torch.Tensor) -> None:
        """Keep channels ``keep``, with the same channel gate on them.

        ``W_gamma = |gamma| / sum|gamma|`` would be renormalised over fewer channels; scaling the kept gamma and beta
        by ``sum_kept / sum_all`` keeps ``W_gamma * BN(x)`` (and so the channel gate) of every kept channel
        identical. The spatial gate normalises each pixel over all channels, so it is not exact after pruning
        (``prune_exact`` is False with ``spatial=True``); its lambda and shift are rescaled the same way.

        Args:
            keep (torch.Tensor): Channels to keep.
        """
        self.unfuse()
        for norm in (self.bn, self.spatial):
            if norm is None:
                continue
            a = norm.weight.detach().abs()
            r = (a[keep.to(a.device)].sum() / a.sum()).clamp_min(torch.finfo(a.dtype).tiny)
            slice_norm(norm, keep)
            norm.weight.mul_(r)
            norm.bias.mul_(r)
        self.c1 = len(keep)

    def extra_repr(self) -> str:
        """Return the spatial flag for ``print(model)``."""
        return f"spatial={self.spatial is not None}"
