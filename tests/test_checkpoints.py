"""Checkpoints of kit models load under Ultralytics' restricted (weights-only) loading."""

from __future__ import annotations

import pytest
import ultralytics.nn.tasks
from conftest import CONFIGS, run_python
from ultralytics import YOLO


def test_safe_load_every_config(tmp_path, tiny_data, env_subprocess):
    """With ULTRALYTICS_SAFE_LOAD=1 each config's checkpoint loads (after `import yolo_attn`) and predicts; the stock
    allow-list alone refuses them, which is what the kit's allow-list entries fix."""
    if not hasattr(ultralytics.nn.tasks, "_SafeLoad"):
        pytest.skip("this Ultralytics release has no restricted (ULTRALYTICS_SAFE_LOAD) loading")
    ckpts = [str(tmp_path / f"{cfg}.pt") for cfg in CONFIGS]
    for cfg, ckpt in zip(CONFIGS, ckpts):
        YOLO(f"yolov8n-{cfg}.yaml").save(ckpt)
    image = next((tiny_data.parent / "images" / "val").glob("*.jpg"))
    load = f"""
import sys
from ultralytics import YOLO
for ckpt in {ckpts!r}:
    try:
        model = YOLO(ckpt)
    except TypeError as e:
        print('refused', ckpt, e)
        continue
    names = [type(m).__name__ for m in model.model.modules() if type(m).__module__.startswith('yolo_attn.modules')]
    assert len(names) >= 4, names
    assert len(model.predict({str(image)!r}, imgsz=64, verbose=False)) == 1
    print('safe-loaded', ckpt)
"""
    env = dict(env_subprocess, ULTRALYTICS_SAFE_LOAD="1")
    proc = run_python("import yolo_attn\n" + load, env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("safe-loaded") == len(CONFIGS), proc.stdout
    refused = run_python("import os; os.environ['YOLO_ATTN_AUTOREGISTER'] = '0'\nimport yolo_attn\n" + load, env, cwd=tmp_path)
    assert refused.returncode == 0 and refused.stdout.count("refused") == len(CONFIGS), refused.stdout + refused.stderr[-2000:]
    assert "outside the supported Ultralytics checkpoint format" in refused.stdout
