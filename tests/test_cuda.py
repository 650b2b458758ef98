"""CUDA-only checks, for every registered block (skipped without a CUDA device; ``scripts/gpu_checks.sh`` runs every
such test): each block's CUDA path against its CPU path, forward and backward (for a block with a deformable
convolution: torchvision's CUDA kernel against the CPU sampling), and the L1 sparsity penalty under CUDA AMP.

Other CUDA-only tests live beside their CPU counterparts (``test_half.py``, the block test files); every one gives a
skip reason that names CUDA, which is how ``scripts/cuda_only.py`` selects them.
"""

from __future__ import annotations

import types

import pytest
import torch
import torch.nn as nn
from block_checks import randomise_
from conftest import KIT_BLOCKS
from ultralytics.engine.trainer import BaseTrainer

from yolo_attn.training.callbacks import on_train_start

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; none here")
PENALISED = [(n, c) for n, c in KIT_BLOCKS if c(32).scale_factors()]  # blocks with scale factors for the penalty


@pytest.fixture
def exact_fp32(monkeypatch):
    """Full float32 convolutions and matrix products on CUDA (no TF32), deterministic cuDNN: paths compare tightly."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("name, cls", KIT_BLOCKS, ids=[n for n, _ in KIT_BLOCKS])
def test_cuda_path_matches_cpu_path(name, cls, mode, exact_fp32):
    """A block gives the same output and gradients on CUDA as on the CPU (random weights: learned offsets of a few
    pixels where a block samples deformably, BN statistics away from their initial values)."""
    cpu = getattr(randomise_(cls(32), seed=3), mode)()
    gpu = getattr(randomise_(cls(32), seed=3).cuda(), mode)()
    x = torch.randn(2, 32, 19, 14, generator=torch.Generator().manual_seed(1)) * 2
    xc, xg = x.clone().requires_grad_(), x.cuda().requires_grad_()
    yc, yg = cpu(xc), gpu(xg)
    torch.testing.assert_close(yg.cpu(), yc.detach(), rtol=1e-4, atol=1e-4)
    w = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    (yc * w).sum().backward()
    (yg * w.cuda()).sum().backward()
    torch.testing.assert_close(xg.grad.cpu(), xc.grad, rtol=1e-3, atol=1e-4)
    for (pname, pc), pg in zip(cpu.named_parameters(), gpu.parameters()):
        torch.testing.assert_close(pg.grad.cpu(), pc.grad, rtol=1e-3, atol=1e-3, msg=lambda m, n=pname: f"{n}: {m}")


class SpySGD(torch.optim.SGD):
    """SGD with lr=0 that records the gradients it is stepped with (after unscale and clipping)."""

    def step(self, closure=None):
        self.seen = [p.grad.clone() for g in self.param_groups for p in g["params"]]
        return super().step(closure)


def _step_grads(cls: type[nn.Module], p: float) -> tuple[list[torch.Tensor], nn.Module]:
    """One float16-autocast backward with a CUDA GradScaler + Ultralytics' optimizer_step; return the gradients seen."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), cls(32), nn.Conv2d(32, 32, 3, padding=1), cls(32))
    with torch.no_grad():  # signed, non-trivial scale factors
        for m in net.modules():
            if isinstance(m, cls):
                for w in m.scale_factors():
                    w.copy_(torch.randn_like(w))
    net = net.cuda()
    net.yaml = {"nam_penalty": p}
    scaler = torch.amp.GradScaler("cuda", init_scale=1024.0)
    trainer = types.SimpleNamespace(model=net, scaler=scaler, ema=None, device=torch.device("cuda"))
    trainer.optimizer = SpySGD(net.parameters(), lr=0.0)
    trainer.optimizer_step = types.MethodType(BaseTrainer.optimizer_step, trainer)
    on_train_start(trainer)
    x = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(1)).cuda()
    with torch.autocast("cuda", dtype=torch.float16):
        loss = net(x).float().pow(2).mean() * 1e-3
    scaler.scale(loss).backward()
    trainer.optimizer_step()
    return trainer.optimizer.seen, net


@pytest.mark.parametrize("name, cls", PENALISED, ids=[n for n, _ in PENALISED])
def test_penalty_exact_under_cuda_amp(name, cls, exact_fp32):
    """Under CUDA AMP (float16 autocast, scaled loss) the gradient of each penalised scale factor changes by exactly
    p * sign(w) after unscaling, and nothing else changes."""
    p = 1e-3
    base, _ = _step_grads(cls, 0.0)
    pen, net = _step_grads(cls, p)
    penalised = {id(w) for m in net.modules() if isinstance(m, cls) for w in m.scale_factors()}
    assert penalised and all(torch.isfinite(g).all() for g in pen)
    for w, g0, g1 in zip(net.parameters(), base, pen):
        expected = p * torch.sign(w.detach()) if id(w) in penalised else torch.zeros_like(w)
        torch.testing.assert_close(g1 - g0, expected, rtol=0, atol=1e-6)
