"""The fork patch applies to the installed Ultralytics and its native registration builds the ready-made configs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import ultralytics
from conftest import ROOT, run_python

PATCH = ROOT / "patches" / "ultralytics-tasks-yolo-attn.patch"


def test_patch_applies_and_builds(tmp_path, env_subprocess):
    """git apply succeeds on a copy of the installed package; the patched parser passes c1 itself."""
    shutil.copytree(Path(ultralytics.__file__).parent, tmp_path / "ultralytics", ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run(["git", "apply", "--check", "-v", str(PATCH)], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    subprocess.run(["git", "apply", str(PATCH)], cwd=tmp_path, check=True)
    env = dict(env_subprocess, PYTHONPATH=f"{tmp_path}:{env_subprocess['PYTHONPATH']}")
    code = f"""
import ultralytics, ultralytics.nn.tasks as tasks, yolo_attn
assert ultralytics.__file__.startswith({str(tmp_path)!r}), ultralytics.__file__
assert all(getattr(tasks, n) is getattr(yolo_attn, n) for n in ('NAM', 'SimAM', 'SE', 'DAS'))  # native names
from ultralytics.nn.tasks import DetectionModel
for cfg in ('nam', 'simam', 'se', 'das'):
    m = DetectionModel({str(ROOT / 'cfg')!r} + f'/yolov8n-{{cfg}}.yaml', verbose=False)
    blocks = [x for x in m.model if type(x).__module__.startswith('yolo_attn.modules')]
    assert len(blocks) == 4 and [m.model[b.i - 1].cv2.conv.out_channels for b in blocks] == [32, 64, 128, 256]
print('ok')
"""
    proc = run_python(code, env, cwd=tmp_path)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]
