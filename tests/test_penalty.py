"""L1 sparsity penalty: exact subgradient after AMP unscaling and gradient clipping, once per optimizer step, any block
with scale factors, setting stored/resolved in one place, visible effect, survives resume / fine-tuning / a DDP worker,
logs to results.csv, plots, saliency report, input validation."""

from __future__ import annotations

import csv
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from conftest import ROOT
from ultralytics import YOLO
from ultralytics.engine.trainer import BaseTrainer

import yolo_attn
from yolo_attn import NAM, AttentionGate, nam_saliency, set_nam_penalty
from yolo_attn.training.callbacks import on_train_start
from yolo_attn.training.penalty import ENV_PENALTY, ENV_SCOPE, resolve_setting, store_setting

TINY = dict(imgsz=64, workers=0, device="cpu", exist_ok=True, seed=0, deterministic=True, verbose=False)


class SpySGD(torch.optim.SGD):
    """SGD with lr=0 that records the gradients it is stepped with (after unscale and clipping)."""

    def step(self, closure=None):
        self.seen = [p.grad.clone() for g in self.param_groups for p in g["params"]]
        return super().step(closure)


def _net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), NAM(8), nn.Conv2d(8, 8, 3, padding=1), NAM(8, spatial=True))
    with torch.no_grad():  # signed, non-trivial scale factors
        for m in net.modules():
            if isinstance(m, NAM):
                for w in m.scale_factors():
                    w.copy_(torch.randn_like(w))
    net.yaml = {}
    return net


def _step_grads(p: float, scaler: torch.amp.GradScaler, loss_gain: float = 1e-3
                ) -> tuple[list[torch.Tensor], nn.Module]:
    """One backward + Ultralytics' own optimizer_step on a fake trainer; return the gradients the optimizer saw."""
    net = _net()
    net.yaml["nam_penalty"] = p
    trainer = types.SimpleNamespace(model=net, scaler=scaler, ema=None, device=torch.device("cpu"))
    trainer.optimizer = SpySGD(net.parameters(), lr=0.0)
    trainer.optimizer_step = types.MethodType(BaseTrainer.optimizer_step, trainer)
    on_train_start(trainer)
    x = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    scaler.scale(net(x).pow(2).mean() * loss_gain).backward()
    trainer.optimizer_step()
    return trainer.optimizer.seen, net


@pytest.mark.parametrize("scale", [None, 1024.0])
@pytest.mark.parametrize("loss_gain", [1e-3, 1e4])
def test_exact_subgradient(scale, loss_gain):
    """Each step adds exactly p * sign(w), AMP or not, and also when clip_grad_norm_(max_norm=10) scales the loss
    gradient down (loss_gain=1e4): the penalty is added after the clipping, so it is neither scaled nor clipped."""
    def make_scaler():
        return torch.amp.GradScaler("cpu", init_scale=scale or 1.0, enabled=scale is not None)

    p = 1e-3
    base, _ = _step_grads(0.0, make_scaler(), loss_gain)
    pen, net = _step_grads(p, make_scaler(), loss_gain)
    norm = torch.linalg.vector_norm(torch.cat([g.flatten() for g in base]))
    if loss_gain > 1:
        assert norm == pytest.approx(10.0, rel=1e-4)  # clipping was active: the loss gradient was scaled to norm 10
    else:
        assert norm < 9.0  # no clipping
    penalised = {id(w) for m in net.modules() if isinstance(m, NAM) for w in m.scale_factors()}
    assert len(penalised) == 3  # two gammas (one per NAM) and the spatial NAM's lambda
    for w, g0, g1 in zip(net.parameters(), base, pen):
        expected = p * torch.sign(w.detach()) if id(w) in penalised else torch.zeros_like(w)
        torch.testing.assert_close(g1 - g0, expected, rtol=0, atol=1e-7)


class _SpyFusedSGD(SpySGD):
    """Stands in for a fused optimizer that unscales inside its kernel: GradScaler hands it still-scaled gradients
    and ``grad_scale``; it records the gradients it would use."""

    _step_supports_amp_scaling = True

    def step(self, closure=None):
        scale = getattr(self, "grad_scale", None)
        self.seen = [p.grad / (1.0 if scale is None else scale) for g in self.param_groups for p in g["params"]]


def test_exact_subgradient_when_the_optimizer_unscales_itself():
    """scaler.step() without unscale_ on a fused-style optimizer: the term is pre-scaled, so it ends up p*sign(w)."""
    p, seen = 1e-3, []
    for penalty in (0.0, p):
        net = _net()
        scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
        opt = _SpyFusedSGD(net.parameters(), lr=0.0)
        yolo_attn.training.L1Subgradient(yolo_attn.training.penalized_parameters(net), penalty).attach(opt)
        x = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(1))
        scaler.scale(net(x).pow(2).mean()).backward()
        scaler.step(opt)
        seen.append(opt.seen)
    penalised = {id(w) for w in yolo_attn.training.penalized_parameters(net)}
    for w, g0, g1 in zip(net.parameters(), *seen):
        expected = p * torch.sign(w.detach()) if id(w) in penalised else torch.zeros_like(w)
        torch.testing.assert_close(g1 - g0, expected, rtol=0, atol=1e-6)


class _Scaled(AttentionGate):
    """A user's block (not registered): per-channel scale factors, gate = sigmoid(s * x)."""

    def __init__(self, c1: int):
        super().__init__(c1)
        self.s = nn.Parameter(torch.linspace(-1.0, 1.0, c1))

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.s[:, None, None] * x)

    def scale_factors(self) -> list[nn.Parameter]:
        return [self.s]


def test_any_block_with_scale_factors_is_penalised_and_reported():
    """The penalty and the saliency report read AttentionGate.scale_factors(), not a block name."""
    net = nn.Sequential(nn.Conv2d(3, 6, 1), nn.BatchNorm2d(6), _Scaled(6), NAM(6))
    got = yolo_attn.training.penalized_parameters(net, "nam")
    assert [id(w) for w in got] == [id(net[2].s), id(net[3].bn.weight)]
    every = yolo_attn.training.penalized_parameters(net, "all")
    assert {id(w) for w in every} == {id(w) for w in got} | {id(net[1].weight)}
    net[2].s.grad = torch.zeros(6)
    opt = torch.optim.SGD([net[2].s], lr=1.0)
    hook = yolo_attn.training.L1Subgradient([net[2].s], 0.1).attach(opt)
    before = net[2].s.detach().clone()
    opt.step()
    after = net[2].s.detach().clone()
    torch.testing.assert_close(after, before - 0.1 * before.sign())
    hook.remove()
    opt.zero_grad(set_to_none=False)
    opt.step()  # detached: a zero gradient and no penalty leave the weights alone
    assert hook.steps == 1 and torch.equal(net[2].s.detach(), after)
    rows = nam_saliency(net, threshold=0.25)
    assert [(r["block"], r["param"], r["channels"]) for r in rows] == [("_Scaled", "s", 6), ("NAM", "bn.weight", 6)]
    assert rows[0]["below"] == int((after.abs() < 0.25).sum()) == 2


def test_setting_stored_in_yaml_and_resolved_cli_over_yaml_over_default(monkeypatch):
    """store_setting writes the YAML keys; resolve_setting: environment (yolo-attn CLI) > YAML > (0.0, 'nam')."""
    monkeypatch.delenv(ENV_PENALTY, raising=False)
    monkeypatch.delenv(ENV_SCOPE, raising=False)
    net = _net()
    assert resolve_setting(net.yaml) == (0.0, "nam")
    assert store_setting(net, "2e-3", "all") == (2e-3, "all")
    assert net.yaml == {"nam_penalty": 2e-3, "nam_penalty_scope": "all"}
    assert resolve_setting(net.yaml) == (2e-3, "all")
    monkeypatch.setenv(ENV_PENALTY, "5e-4")
    assert resolve_setting(net.yaml) == (5e-4, "all")
    monkeypatch.setenv(ENV_SCOPE, "nam")
    assert resolve_setting(net.yaml) == (5e-4, "nam")
    with pytest.raises(TypeError, match="yaml dict"):
        store_setting(nn.Conv2d(1, 1, 1), 1e-4)


def test_scope_all_covers_every_batchnorm():
    """scope='all' adds every BatchNorm2d weight (network slimming); 'nam' only NAM's scale factors."""
    model = YOLO("yolov8n-nam.yaml").model
    nam = yolo_attn.training.penalized_parameters(model, "nam")
    every = yolo_attn.training.penalized_parameters(model, "all")
    n_bn = sum(1 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert len(nam) == 4 and len(every) == n_bn and {id(w) for w in nam} <= {id(w) for w in every}


def _train(model: YOLO, data: Path, project: Path, name: str, **kw) -> dict:
    """Train and return what the test callback saw: penalty state, optimizer steps, batches."""
    seen = {"steps": 0, "batches": 0}

    def start(trainer):
        seen["state"], seen["optimizer"] = trainer.nam_penalty, trainer.optimizer
        step = trainer.optimizer.step

        def counted(*a, **k):
            seen["steps"] += 1
            return step(*a, **k)

        trainer.optimizer.step = counted

    def batch_end(trainer):
        seen["batches"] += 1

    model.add_callback("on_train_start", start)
    model.add_callback("on_train_batch_end", batch_end)
    model.train(data=str(data), project=str(project), name=name, **{**TINY, **kw})
    return seen


def _csv_last(run: Path) -> dict:
    with open(run / "results.csv") as f:
        return list(csv.DictReader(f))[-1]


def test_once_per_optimizer_step_with_accumulation(tiny_data, tmp_path):
    """nbs/batch = 4 micro-batches per step: the penalty is applied once per optimizer step, not per batch."""
    seen = _train(YOLO("yolov8n-nam.yaml"), tiny_data, tmp_path, "acc", epochs=1, batch=2, nbs=8, warmup_epochs=0, plots=False)
    assert seen["state"].p == 1e-4  # the ready-made NAM config's default
    assert seen["batches"] == 8 and seen["steps"] == 2 and seen["state"].steps == seen["steps"]
    assert seen["state"].hook.optimizer is None and not seen["optimizer"]._optimizer_step_pre_hooks  # detached at end


def test_penalty_shrinks_scale_factors_and_logs(tiny_data, tmp_path, capsys):
    """Same seed, p > 0 vs p = 0: smaller L1 of NAM scale factors; results.csv columns; a valid nam_gamma.png."""
    sgd = dict(epochs=3, batch=4, nbs=4, optimizer="SGD", lr0=0.02, warmup_epochs=0)
    l1 = {}
    for p in (0.0, 1e-2):
        model = set_nam_penalty(YOLO("yolov8n-nam.yaml"), p)
        _train(model, tiny_data, tmp_path, f"p{p}", plots=p > 0, **sgd)
        row = _csv_last(tmp_path / f"p{p}")
        assert {"nam/penalty", "nam/l1", "nam/mean_abs_gamma", "nam/sparsity"} <= set(row)
        assert float(row["nam/penalty"]) == pytest.approx(p * float(row["nam/l1"]), rel=1e-4, abs=1e-9)
        l1[p] = float(row["nam/l1"])
    with capsys.disabled():
        print(f"\nNAM L1 of scale factors after 3 epochs: p=0 -> {l1[0.0]:.4f}, p=1e-2 -> {l1[1e-2]:.4f}")
    assert l1[1e-2] < l1[0.0] - 0.01
    png = tmp_path / "p0.01" / "nam_gamma.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(png) as im:
        assert im.size[0] > 4 * im.size[1] // 2  # one panel per NAM layer, side by side
    assert not (tmp_path / "p0.0" / "nam_gamma.png").exists()  # plots=False is respected


def test_survives_resume_and_finetune(tiny_data, tmp_path):
    """The penalty stored in the checkpoint is applied after resume=True and when fine-tuning best.pt."""
    model = set_nam_penalty(YOLO("yolov8n-nam.yaml"), 5e-3, scope="all")
    keep = tmp_path / "epoch1.pt"

    def snapshot(trainer):
        if trainer.epoch == 0:
            keep.write_bytes(Path(trainer.last).read_bytes())  # a resumable last.pt (optimizer state kept)

    model.add_callback("on_model_save", snapshot)
    _train(model, tiny_data, tmp_path, "first", epochs=2, batch=8, plots=False)
    resumed = _train(YOLO(str(keep)), tiny_data, tmp_path, "first", resume=True)
    assert resumed["state"].p == 5e-3 and resumed["state"].scope == "all" and resumed["state"].steps > 0
    tuned = _train(YOLO(str(tmp_path / "first" / "weights" / "best.pt")), tiny_data, tmp_path, "tune", epochs=1,
                   batch=8, plots=False)
    assert tuned["state"].p == 5e-3 and tuned["state"].steps == tuned["steps"] > 0
    rows = nam_saliency(tmp_path / "tune" / "weights" / "best.pt", threshold=10.0)
    assert [r["channels"] for r in rows] == [32, 64, 128, 256] and all(r["below"] == r["channels"] for r in rows)
    assert all(r["weight_share_below"] == pytest.approx(1.0) for r in rows)


def test_ddp_worker_has_blocks_and_penalty(tiny_data, tmp_path, env_subprocess):
    """Ultralytics' DDP temp file, run in a fresh process: blocks registered, callbacks attached, penalty applied."""
    from ultralytics.models.yolo.detect import DetectionTrainer
    from ultralytics.utils.dist import generate_ddp_file

    overrides = dict(model="yolov8n-nam.yaml", data=str(tiny_data), epochs=1, batch=8, project=str(tmp_path),
                     name="ddp", plots=False, **TINY)
    trainer = DetectionTrainer(overrides=overrides)
    trainer.model = set_nam_penalty(YOLO("yolov8n-nam.yaml"), 2e-3).model
    file = generate_ddp_file(trainer)
    try:
        env = dict(env_subprocess, PYTHONPATH="")  # the worker must get the kit from the pickled state alone
        proc = subprocess.run([sys.executable, file], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    finally:
        Path(file).unlink(missing_ok=True)
        Path(file).with_suffix(".pt").unlink(missing_ok=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    row = _csv_last(tmp_path / "ddp")  # written by the worker's callbacks: the penalty was active there
    assert float(row["nam/penalty"]) == pytest.approx(2e-3 * float(row["nam/l1"]), rel=1e-4)


@pytest.mark.parametrize("value", ["abc", "-1", "nan"])
def test_cli_rejects_bad_penalty_before_training(value, tmp_path, env_subprocess):
    """`yolo-attn train nam_penalty=<bad>` exits with a clear message and never starts (no run directory)."""
    cmd = [sys.executable, "-m", "yolo_attn", "train", "model=yolov8n-nam.yaml", f"nam_penalty={value}",
           f"project={tmp_path}", "name=bad"]
    proc = subprocess.run(cmd, env=env_subprocess, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "nam_penalty must be a finite number >= 0" in proc.stderr
    assert not (tmp_path / "bad").exists()


def test_api_and_yaml_reject_bad_penalty(tiny_data, tmp_path):
    """set_nam_penalty validates; a bad YAML value stops training before the first batch with the same message."""
    with pytest.raises(ValueError, match="nam_penalty must be a finite number >= 0"):
        set_nam_penalty(YOLO("yolov8n-nam.yaml"), -1e-4)
    with pytest.raises(ValueError, match="nam_penalty_scope must be one of"):
        set_nam_penalty(YOLO("yolov8n-nam.yaml"), 1e-4, scope="bn")
    cfg = tmp_path / "yolov8n-bad.yaml"
    cfg.write_text((ROOT / "cfg" / "yolov8-nam.yaml").read_text().replace("nam_penalty: 1.0e-4", "nam_penalty: lots"))
    model = YOLO(str(cfg))
    batches = []
    model.add_callback("on_train_batch_start", batches.append)
    with pytest.raises(ValueError, match="nam_penalty must be a finite number >= 0.*'lots'"):
        model.train(data=str(tiny_data), project=str(tmp_path), name="bad", epochs=1, batch=8, plots=False, **TINY)
    assert not batches
