"""DAS's export: ONNX DeformConv with the layout torchvision uses, opset raised to the block's floor (19), dynamic
shapes and onnxslim. The generic export checks of every block are in ``tests/test_export.py``.
"""

from __future__ import annotations

import logging
import types
from pathlib import Path

import onnx
import onnxruntime as ort
import pytest
import torch
from test_export import (
    ATOL_BOX_PX,
    ATOL_SCORE,
    IMGSZ,
    first_val_image,
    head_output,
    letterboxed,
    max_diffs,
    pytestmark,  # noqa: F401 - the same expected export warnings
    randomize,
)
from ultralytics import YOLO
from ultralytics.utils import LOGGER

from yolo_attn import DAS
from yolo_attn.integration import export as kit_export


@pytest.fixture(scope="module")
def das_low_opset(tiny_data, tmp_path_factory):
    """A randomised DAS model exported with ``opset=17, dynamic=True``, and the yolo-attn log records of that export."""
    kit_export.install_export()
    out = tmp_path_factory.mktemp("export-das-opset17")
    torch.manual_seed(1)
    model = YOLO("yolov8n-das.yaml")
    randomize(model.model, seed=1)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    level = LOGGER.level
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(out)
            f = Path(model.export(format="onnx", imgsz=IMGSZ, opset=17, dynamic=True, simplify=False)).resolve()
    finally:
        LOGGER.removeHandler(handler)
        LOGGER.setLevel(level)
    messages = [r.getMessage() for r in records if "yolo-attn" in r.getMessage()]
    return types.SimpleNamespace(model=model.model.eval(), onnx=f, records=records, messages=messages)


def test_randomised_offsets_sample_between_pixels(tiny_data):
    """The export tests' randomisation gives DAS offsets of about a pixel, fractional: sampling between pixels."""
    torch.manual_seed(0)
    model = YOLO("yolov8n-das.yaml").model
    randomize(model)
    offsets = []
    das = [m for m in model.modules() if isinstance(m, DAS)]
    hooks = [m.offset.register_forward_hook(lambda mod, i, o: offsets.append(o)) for m in das]
    with torch.no_grad():
        model.eval()(letterboxed(first_val_image(tiny_data)))
    for h in hooks:
        h.remove()
    assert len(offsets) == 4 and all(0.2 < float(o.abs().mean()) < 5 for o in offsets)


def test_das_explicit_low_opset_is_raised(das_low_opset):
    """``opset=17`` on a DAS model is raised to 19 with one warning; one DeformConv per block, without a mask."""
    m = onnx.load(str(das_low_opset.onnx))
    assert next(o.version for o in m.opset_import if o.domain in {"", "ai.onnx"}) == DAS.export_opset == 19
    nodes = [n for n in m.graph.node if n.op_type == "DeformConv"]
    assert len(nodes) == 4 and all(len(n.input) == 4 for n in nodes)  # X, W, offset, B: no modulation mask
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in nodes[0].attribute}
    assert attrs["pads"] == [1, 1, 1, 1] and attrs["strides"] == [1, 1] and attrs["kernel_shape"] == [3, 3]
    warnings = [r.getMessage() for r in das_low_opset.records if r.levelno == logging.WARNING]
    warnings = [w for w in warnings if "yolo-attn" in w]
    assert len(warnings) == 1, das_low_opset.messages
    assert "raising opset 17 -> 19" in warnings[0] and "DAS (export_opset=19)" in warnings[0]


@pytest.mark.parametrize("shape", [(2, 3, 64, 64), (1, 3, 96, 128)])
def test_das_dynamic_onnx_matches_pytorch(das_low_opset, tiny_data, shape):
    """A ``dynamic=True`` DAS export runs DeformConv at other batch sizes and image sizes, matching PyTorch."""
    x = letterboxed(first_val_image(tiny_data))
    x = torch.nn.functional.interpolate(x, size=shape[2:], mode="bilinear").expand(shape[0], -1, -1, -1).contiguous()
    x[-1] = x[-1].flip(-1)  # batch items differ when there are two
    sess = ort.InferenceSession(str(das_low_opset.onnx), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"images": x.numpy()})
    with torch.no_grad():
        ref = head_output(das_low_opset.model(x))
    box, score = max_diffs(y, ref)
    print(f"\ndas dynamic {tuple(shape)}: ONNX vs PyTorch max abs diff: boxes {box:.3g} px, scores {score:.3g}")
    assert y.shape == tuple(ref.shape) and box < ATOL_BOX_PX and score < ATOL_SCORE


def test_onnxslim_keeps_das_graph_correct(das_low_opset, tiny_data):
    """Where onnxslim is installed (Ultralytics' ``simplify=True``), it handles DeformConv and keeps the numerics."""
    onnxslim = pytest.importorskip("onnxslim")
    slim = onnxslim.slim(onnx.load(str(das_low_opset.onnx)))
    slim.ir_version = min(slim.ir_version, 10)  # as Ultralytics' exporter does after slimming, for onnxruntime
    assert sum(n.op_type == "DeformConv" for n in slim.graph.node) == 4
    x = letterboxed(first_val_image(tiny_data))
    sess = ort.InferenceSession(slim.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"images": x.numpy()})
    with torch.no_grad():
        box, score = max_diffs(y, head_output(das_low_opset.model(x)))
    assert box < ATOL_BOX_PX and score < ATOL_SCORE
