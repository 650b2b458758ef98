"""Real training on the built-in dataset, through the Python API and the yolo-attn CLI; checkpoints reload elsewhere."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import CONFIG_BLOCKS, CONFIGS, run_python
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
    block = CONFIG_BLOCKS[cfg]
    _reload_and_compare(best, tmp_path, dict(env_subprocess, DATA_ROOT=str(tiny_data.parent)), block)


def _cli(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "yolo_attn", *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_cli_train_val_export_saliency(tiny_data, tmp_path, env_subprocess):
    """`yolo-attn train` (Ultralytics syntax, default plots on, kit option nam_penalty overriding the YAML's 1e-4),
    then val, TorchScript export and the saliency report on its best.pt, which also reloads in a fresh process."""
    common = [f"data={tiny_data}", f"imgsz={IMGSZ}", "batch=8", "workers=0", "device=cpu", f"project={tmp_path}"]
    _cli(["train", "model=yolov8n-nam.yaml", "epochs=1", "name=cli", "exist_ok=True", "nam_penalty=3e-3", *common],
         env_subprocess, tmp_path)
    run = tmp_path / "cli"
    best = run / "weights" / "best.pt"
    assert (run / "results.png").is_file() and (run / "nam_gamma.png").is_file()
    with open(run / "results.csv") as f:
        row = list(csv.DictReader(f))[-1]
    assert float(row["nam/penalty"]) == pytest.approx(3e-3 * float(row["nam/l1"]), rel=1e-4)
    _reload_and_compare(best, tmp_path, dict(env_subprocess, DATA_ROOT=str(tiny_data.parent)), CONFIG_BLOCKS["nam"])

    _cli(["val", f"model={best}", "name=val", *common], env_subprocess, tmp_path)
    assert (tmp_path / "val").is_dir()
    _cli(["export", f"model={best}", "format=torchscript", f"imgsz={IMGSZ}"], env_subprocess, tmp_path)
    ts = torch.jit.load(str(best.with_suffix(".torchscript")))
    x = torch.rand(1, 3, IMGSZ, IMGSZ)
    model = YOLO(str(best)).model.float().eval()
    with torch.no_grad():
        torch.testing.assert_close(ts(x)[0] if isinstance(ts(x), (list, tuple)) else ts(x), model(x)[0], atol=1e-4,
                                   rtol=1e-4)
    out = _cli(["saliency", f"model={best}", "threshold=10"], env_subprocess, tmp_path).stdout
    rows = [line.split() for line in out.splitlines() if re.match(r"layer \d", line)]
    assert [(r[2], r[3]) for r in rows] == [("32", "32"), ("64", "64"), ("128", "128"), ("256", "256")]  # all < 10
