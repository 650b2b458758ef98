"""Real training on the built-in dataset, through the Python API and the yolo-attn CLI; checkpoints reload elsewhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import CONFIGS, run_python
from ultralytics import YOLO


IMGSZ = 64
TRAIN = dict(epochs=1, imgsz=IMGSZ, batch=8, workers=0, device="cpu", plots=False, exist_ok=True, seed=0)


def _reload_and_compare(best: Path, tmp_path: Path, env: dict, block: str) -> None:
    """In a fresh process that never imports yolo_attn, load best.pt, check its blocks, predict, match our output."""
    model = YOLO(str(best))
    x = torch.rand(1, 3, IMGSZ, IMGSZ, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model.model.float().eval()(x)[0]
    torch.save({"x": x, "y": expected}, tmp_path / "expected.pt")
    image = sorted((Path(env["DATA_ROOT"]) / "images" / "val").glob("*.jpg"))[0]
    code = f"""
import sys, torch
from ultralytics import YOLO
model = YOLO({str(best)!r})
assert 'yolo_attn' in sys.modules  # unpickling imported the kit by its stable module paths
names = [type(m).__name__ for m in model.model.modules() if type(m).__module__.startswith('yolo_attn.modules')]
assert names == [{block!r}] * 4, names
ref = torch.load({str(tmp_path / 'expected.pt')!r})
with torch.no_grad():
    y = model.model.float().eval()(ref['x'])[0]
assert torch.allclose(y, ref['y'], atol=1e-5), (y - ref['y']).abs().max()
results = model.predict({str(image)!r}, imgsz={IMGSZ}, conf=0.0001, verbose=False)
assert len(results) == 1 and results[0].boxes is not None and results[0].orig_shape == (96, 96)
print('reloaded', len(results[0].boxes))
"""
    proc = run_python(code, env, cwd=tmp_path)
    assert proc.returncode == 0 and "reloaded" in proc.stdout, proc.stderr[-3000:]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_train_python_api(cfg, tiny_data, tmp_path, env_subprocess):
    """YOLO('yolov8n-<block>.yaml').train(...) on the built-in data writes a best.pt that reloads and predicts."""
    model = YOLO(f"yolov8n-{cfg}.yaml")
    metrics = model.train(data=str(tiny_data), project=str(tmp_path), name=cfg, **TRAIN)
    best = tmp_path / cfg / "weights" / "best.pt"
    assert best.is_file() and 0.0 <= metrics.box.map50 <= 1.0
    assert model.model.names == {i: str(i) for i in range(10)}  # nc/names came from the dataset
    block = {"nam": "NAM", "simam": "SimAM", "se": "SE", "das": "DAS"}[cfg]
    _reload_and_compare(best, tmp_path, dict(env_subprocess, DATA_ROOT=str(tiny_data.parent)), block)


def test_train_cli(tiny_data, tmp_path, env_subprocess):
    """`yolo-attn train model=yolov8n-se.yaml ...` (Ultralytics syntax, default plots on) trains and its best.pt reloads."""
    cmd = [sys.executable, "-m", "yolo_attn", "train", "model=yolov8n-se.yaml", f"data={tiny_data}", "epochs=1",
           f"imgsz={IMGSZ}", "batch=8", "workers=0", "device=cpu", f"project={tmp_path}", "name=cli", "exist_ok=True"]
    proc = subprocess.run(cmd, env=env_subprocess, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "cli"
    assert (run / "results.csv").is_file() and (run / "results.png").is_file()
    _reload_and_compare(run / "weights" / "best.pt", tmp_path, dict(env_subprocess, DATA_ROOT=str(tiny_data.parent)), "SE")
