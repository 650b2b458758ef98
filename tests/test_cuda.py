"""CUDA-only checks (skipped without a CUDA device; ``scripts/gpu_checks.sh`` runs every such test): DAS's CUDA
deformable convolution (torchvision's kernel) against its CPU path, and NAM's L1 penalty under CUDA AMP.

The other CUDA-only tests live beside their CPU counterparts (``test_half.py``, ``test_modules.py``); every one
gives a skip reason that names CUDA, which is how ``scripts/cuda_only.py`` selects them.
"""

from __future__ import annotations

import math
import types

import pytest
import torch
import torch.nn as nn
from ultralytics.engine.trainer import BaseTrainer

from yolo_attn.modules import DAS, NAM
from yolo_attn.training.callbacks import on_train_start

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; none here")


def _das(c: int = 32, seed: int = 0) -> DAS:
    """A DAS with random weights and offsets of a few pixels, fractional, so deformable sampling really matters."""
    torch.manual_seed(seed)
    m = DAS(c, alpha=0.25)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in m.named_parameters():  # norm scales near 1, everything else around 0
            scale = name.endswith("norm.weight") or name == "ln.weight"
            p.copy_(torch.randn(p.shape, generator=g) * (0.2 if scale else 0.5) + (1.0 if scale else 0.0))
        fan_in = m.offset.weight[0].numel()
        m.offset.weight.normal_(0.0, 1.5 / math.sqrt(fan_in), generator=g)
        m.offset.bias.normal_(0.0, 0.5, generator=g)
    return m


@pytest.fixture
def exact_fp32(monkeypatch):
    """Full float32 convolutions and matrix products on CUDA (no TF32), so float32 paths can be compared tightly."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_das_cuda_deform_conv_matches_cpu_path(mode, exact_fp32):
    """The CUDA path (torchvision's deformable-conv kernel) and the CPU path give the same output and gradients."""
    cpu = getattr(_das(), mode)()
    gpu = getattr(_das().cuda(), mode)()
    x = torch.randn(2, 32, 19, 14, generator=torch.Generator().manual_seed(1)) * 2
    xc, xg = x.clone().requires_grad_(), x.cuda().requires_grad_()
    yc, yg = cpu(xc), gpu(xg)
    torch.testing.assert_close(yg.cpu(), yc.detach(), rtol=1e-4, atol=1e-4)
    w = torch.randn_like(x)
    (yc * w).sum().backward()
    (yg * w.cuda()).sum().backward()
    torch.testing.assert_close(xg.grad.cpu(), xc.grad, rtol=1e-3, atol=1e-4)
    for (name, pc), pg in zip(cpu.named_parameters(), gpu.parameters()):
        torch.testing.assert_close(pg.grad.cpu(), pc.grad, rtol=1e-3, atol=1e-3, msg=lambda m, n=name: f"{n}: {m}")


class SpySGD(torch.optim.SGD):
    """SGD with lr=0 that records the gradients it is stepped with (after unscale and clipping)."""

    def step(self, closure=None):
        self.seen = [p.grad.clone() for g in self.param_groups for p in g["params"]]
        return super().step(closure)


def _step_grads(p: float) -> tuple[list[torch.Tensor], nn.Module]:
    """One float16-autocast backward with a CUDA GradScaler + Ultralytics' optimizer_step; return the gradients seen."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), NAM(8), nn.Conv2d(8, 8, 3, padding=1), NAM(8, spatial=True))
    with torch.no_grad():  # signed, non-trivial scale factors
        for m in net.modules():
            if isinstance(m, NAM):
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


def test_nam_penalty_exact_under_cuda_amp(exact_fp32):
    """Under CUDA AMP (float16 autocast, scaled loss) each penalised scale factor's gradient changes by exactly
    p * sign(w) after unscaling, and nothing else changes."""
    p = 1e-3
    base, _ = _step_grads(0.0)
    pen, net = _step_grads(p)
    penalised = {id(w) for m in net.modules() if isinstance(m, NAM) for w in m.scale_factors()}
    assert len(penalised) == 3  # two gammas (one per NAM) and the spatial NAM's lambda
    assert all(torch.isfinite(g).all() for g in pen)
    for w, g0, g1 in zip(net.parameters(), base, pen):
        expected = p * torch.sign(w.detach()) if id(w) in penalised else torch.zeros_like(w)
        torch.testing.assert_close(g1 - g0, expected, rtol=0, atol=1e-6)
