"""Your own block is one file: a block defined outside the package, registered through the public call only, works
with the whole kit (YAML rows at every scale, make-config, attention maps, stock weight transfer, ONNX export).

The block lives in a temporary ``.py`` file and is registered with ``yolo_attn.BLOCKS.register`` and
``yolo_attn.register()`` in a fresh interpreter: nothing in the kit knows it, and the test process's registry stays
untouched.
"""

from __future__ import annotations

import json

import pytest
from conftest import run_python

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

BLOCK_FILE = '''
"""PixelGate: y = x * sigmoid(scale * conv1x1(x)), a user's block in its own file."""

import torch
import torch.nn as nn

from yolo_attn import Arg, AttentionGate

__all__ = ["PixelGate"]


class PixelGate(AttentionGate):
    """A 1x1 convolution gate with a temperature."""

    args = (Arg("scale", 1.0, low=0.0, high=10.0, low_open=True, doc="gate temperature"),)
    paper = "none (a test block)"
    formula = "y = x * sigmoid(scale * conv1x1(x))"
    params = "C*C + C"
    config_args = (2.0,)
    fresh_gate = True

    def __init__(self, c1: int, scale: float = 1.0):
        super().__init__(c1)
        (self.scale,) = self.checked(scale=scale)
        self.conv = nn.Conv2d(self.c1, self.c1, 1)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.scale * self.conv(x))
'''

SCRIPT = '''
import json, sys
sys.path.insert(0, {tmp!r})
import cv2, numpy as np, onnxruntime as ort, torch, yaml
import yolo_attn
from pathlib import Path
from ultralytics import YOLO
from ultralytics.nn.tasks import DetectionModel
from my_gates import PixelGate

tmp = Path({tmp!r})
yolo_attn.BLOCKS.register(PixelGate)  # the public call, then register() as for any block added later
yolo_attn.register()
out = {{}}

# make-config: a ready-made config for it, with its config_args
cfg = tmp / "yolov8-pixelgate.yaml"
yolo_attn.make_config("yolov8.yaml", "PixelGate", at="backbone", out=cfg)
d = yaml.safe_load(cfg.read_text())
out["config_rows"] = [r for r in d["backbone"] if r[2] == "PixelGate"]

# YAML rows at every scale, each block built for its input's channels
out["scales"] = {{}}
for scale in "nslmx":
    m = DetectionModel(dict(d, scale=scale), verbose=False)
    blocks = [b for b in m.model if isinstance(b, PixelGate)]
    out["scales"][scale] = [[b.c1, m.model[b.i - 1].cv2.conv.out_channels, b.scale] for b in blocks]

# attention maps
img = (np.random.default_rng(0).random((90, 120, 3)) * 255).astype(np.uint8)
model = YOLO(str(cfg).replace("yolov8-", "yolov8n-"))
from yolo_attn.visualize import attention_maps
maps = attention_maps(model, img, imgsz=64)
out["maps"] = [[mp.block, list(mp.gate.shape), float(mp.gate.min()), float(mp.gate.max())] for mp in maps]

# stock weights transfer in (a stock YOLOv8n built here and saved: no download)
stock = YOLO("yolov8n.yaml")
stock.save(tmp / "stock.pt")
report = yolo_attn.transfer_weights(model, tmp / "stock.pt", verbose=False)
saved = torch.load(tmp / "stock.pt", map_location="cpu", weights_only=False)  # the checkpoint stores half precision
sd, ssd = model.model.state_dict(), (saved.get("ema") or saved["model"]).float().state_dict()
out["transfer"] = [report.transferred, len(ssd), report.attention_rows,
                   all(torch.equal(sd[f"model.{{t}}.{{k[len(f'model.{{s}}.'):]}}"], v) for t, s in report.layer_map.items()
                       for k, v in ssd.items() if k.startswith(f"model.{{s}}."))]

# ONNX export with onnxruntime parity
import os
os.chdir(tmp)
f = model.export(format="onnx", imgsz=64)
x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    ref = model.model.eval()(x)
ref = (ref[0] if isinstance(ref, (list, tuple)) else ref).numpy()
sess = ort.InferenceSession(f, providers=["CPUExecutionProvider"])
(y,) = sess.run(None, {{sess.get_inputs()[0].name: x.numpy()}})
out["onnx"] = [list(y.shape), list(ref.shape), float(np.abs(y - ref)[:, 4:].max()), float(np.abs(y - ref)[:, :4].max())]
print("RESULT " + json.dumps(out))
'''


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> dict:
    """Run the whole user workflow once in a fresh interpreter and return what it measured."""
    import os

    from conftest import ROOT

    tmp = tmp_path_factory.mktemp("own-block")
    (tmp / "my_gates.py").write_text(BLOCK_FILE, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = run_python(SCRIPT.format(tmp=str(tmp)), env, cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def test_make_config_uses_its_declarations(result):
    """make-config places it after each backbone stage with its declared config_args."""
    assert result["config_rows"] == [[-1, 1, "PixelGate", [2.0]]] * 4


def test_rows_build_at_every_scale(result):
    """At every scale n-x each row builds the block for the width of the layer before it, with the row's argument."""
    widths = {"n": [32, 64, 128, 256], "s": [64, 128, 256, 512], "m": [96, 192, 384, 576], "l": [128, 256, 512, 512],
              "x": [160, 320, 640, 640]}  # YOLOv8's C2f widths: make_divisible(min(c, max_channels) * width, 8)
    for scale, blocks in result["scales"].items():
        assert [b[0] for b in blocks] == [b[1] for b in blocks] == widths[scale], scale
        assert all(b[2] == 2.0 for b in blocks)


def test_attention_maps(result):
    """visualize maps each of its 4 layers at the image's size, gates in [0, 1]."""
    assert len(result["maps"]) == 4
    assert all(name == "PixelGate" and shape == [90, 120] and 0 <= lo <= hi <= 1 for name, shape, lo, hi in result["maps"])


def test_stock_weights_transfer(result):
    """Every tensor of a stock YOLOv8n lands in the layer it came from; only the 4 new rows keep their initialisation."""
    transferred, stock_total, attention_rows, equal = result["transfer"]
    assert transferred == stock_total and len(attention_rows) == 4 and equal


def test_onnx_parity(result):
    """The ONNX export runs in onnxruntime and matches PyTorch."""
    y_shape, ref_shape, score_diff, box_diff = result["onnx"]
    assert y_shape == ref_shape and score_diff < 1e-4 and box_diff < 1e-2
