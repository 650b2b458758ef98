"""The fork patch applies to the installed Ultralytics and its native registration builds the ready-made configs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import ultralytics
from conftest import ROOT, run_python

PATCH = ROOT / "patches" / "ultralytics-tasks-yolo-attn.patch"


def test_patch_applies_and_builds(tmp_path, env_subprocess):
    """git apply succeeds on a copy of the installed package; the patched parser passes c1 to every registered block."""
    shutil.copytree(Path(ultralytics.__file__).parent, tmp_path / "ultralytics", ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run(["git", "apply", "--check", "-v", str(PATCH)], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    subprocess.run(["git", "apply", str(PATCH)], cwd=tmp_path, check=True)
    env = dict(env_subprocess, PYTHONPATH=f"{tmp_path}:{env_subprocess['PYTHONPATH']}")
    code = f"""
import ultralytics, ultralytics.nn.tasks as tasks, yolo_attn
assert ultralytics.__file__.startswith({str(tmp_path)!r}), ultralytics.__file__
names = [*yolo_attn.BLOCKS.names(), *yolo_attn.BLOCKS.aliases()]
assert all(getattr(tasks, n) is yolo_attn.BLOCKS.get(n) for n in names), names  # native names, from the registry
from ultralytics.nn.tasks import DetectionModel
for name, cls in yolo_attn.BLOCKS.items():
    m = DetectionModel({str(ROOT / 'cfg')!r} + f'/yolov8n-{{name.lower()}}.yaml', verbose=False)
    blocks = [x for x in m.model if type(x) is cls]
    assert len(blocks) == 4 and [m.model[b.i - 1].cv2.conv.out_channels for b in blocks] == [32, 64, 128, 256], name
    assert all(b.c1 == c for b, c in zip(blocks, [32, 64, 128, 256])), name  # c1 passed by the patched parser
print('ok', len(names))
"""
    proc = run_python(code, env, cwd=tmp_path)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]
