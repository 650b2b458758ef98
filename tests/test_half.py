"""``half=True`` val/predict: finite results for every block on CUDA; on the CPU Ultralytics runs float32 instead."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import CONFIGS
from ultralytics import YOLO

IMGSZ = 64


def _checkpoint(cfg: str, tmp_path: Path, tiny_data: Path) -> Path:
    """A 1-epoch checkpoint of ``yolov8n-<cfg>.yaml`` on the tiny built-in data (real BN statistics, real gates)."""
    model = YOLO(f"yolov8n-{cfg}.yaml")
    model.train(data=str(tiny_data), epochs=1, imgsz=IMGSZ, batch=8, workers=0, device="cpu", plots=False,
                project=str(tmp_path), name=cfg, exist_ok=True, seed=0, val=False)
    return tmp_path / cfg / "weights" / "last.pt"


def _val_predict(ckpt: Path, tiny_data: Path, device: str, tmp_path: Path):
    """Run val and predict with ``half=True``; return the metrics and the predicted boxes."""
    image = next((tiny_data.parent / "images" / "val").glob("*.jpg"))
    metrics = YOLO(str(ckpt)).val(data=str(tiny_data), imgsz=IMGSZ, batch=8, half=True, device=device, plots=False,
                                  project=str(tmp_path), name="val", exist_ok=True, verbose=False)
    boxes = YOLO(str(ckpt)).predict(str(image), imgsz=IMGSZ, half=True, device=device, conf=1e-4, verbose=False)[0].boxes
    return metrics, boxes


def _assert_finite(metrics, boxes) -> None:
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.results_dict.values()), metrics.results_dict
    assert torch.isfinite(boxes.data).all() and len(boxes) > 0


@pytest.mark.parametrize("cfg", ["nam", "das"])
def test_half_on_cpu_falls_back_to_float32(cfg, tiny_data, tmp_path):
    """On the CPU (no float16 inference there) half=True must still validate and predict with finite results."""
    ckpt = _checkpoint(cfg, tmp_path, tiny_data)
    _assert_finite(*_val_predict(ckpt, tiny_data, "cpu", tmp_path))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="half=True inference needs a CUDA device; none here")
@pytest.mark.parametrize("cfg", CONFIGS)
def test_half_on_cuda_is_finite_and_close_to_float32(cfg, tiny_data, tmp_path):
    """half=True val/predict on CUDA: finite metrics and boxes, raw outputs within float16 rounding of float32."""
    ckpt = _checkpoint(cfg, tmp_path, tiny_data)
    _assert_finite(*_val_predict(ckpt, tiny_data, "cuda:0", tmp_path))
    net = YOLO(str(ckpt)).model.float().eval().cuda().fuse()
    x = torch.rand(2, 3, IMGSZ, IMGSZ, device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    with torch.no_grad():
        ref = net(x)[0]
        y = net.half()(x.half())[0].float()
    assert torch.isfinite(y).all()
    scores = slice(4, None)  # class probabilities in [0, 1]: float16 keeps ~3 decimal digits
    assert (y[:, scores] - ref[:, scores]).abs().max() < 1e-2
